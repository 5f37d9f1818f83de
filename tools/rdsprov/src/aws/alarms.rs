//! CloudWatch alarms on an instance's vital signs — CPU, connections, free storage (capacity
//! on Aurora Serverless v2, whose writer they watch), freeable memory — sent to an SNS topic that is created when missing (optionally with an email
//! subscription). Observed with describe/list calls only; `PutMetricAlarm` is an upsert, so a
//! changed threshold is one call and an unchanged alarm none.

use crate::aws::progress::Progress;
use crate::aws::spec::{AlarmsSpec, InstanceSpec};
use crate::aws::{describe, Aws};
use dbtools::contract::{AttributeChange, PlannedChange};
use dbtools::contract::{ChangeWhen, PlanAction, PlanResource};
use dbtools::{Error, Result};
use std::collections::BTreeMap;

/// One alarm as the spec wants it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WantedAlarm {
    pub name: String,
    pub metric: &'static str,
    pub statistic: &'static str,
    /// Fires above the threshold (else below it).
    pub above: bool,
    pub threshold: f64,
    pub evaluation_periods: i32,
    pub description: String,
}

/// One alarm as CloudWatch has it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ObservedAlarm {
    pub metric: String,
    pub threshold: f64,
    pub above: bool,
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ObservedAlarms {
    pub topic_arn: Option<String>,
    /// Whether the spec's email is subscribed to the topic (confirmed or pending).
    pub email_subscribed: bool,
    pub alarms: BTreeMap<String, ObservedAlarm>,
}

const PERIOD_SECONDS: i32 = 300;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
const MIB: f64 = 1024.0 * 1024.0;

pub(crate) fn alarm_prefix(spec: &InstanceSpec) -> String {
    format!("rdsprov-{}-", spec.id)
}

/// The four alarms of an instance, in a fixed order.
pub(crate) fn wanted(spec: &InstanceSpec, alarms: &AlarmsSpec) -> Vec<WantedAlarm> {
    let prefix = alarm_prefix(spec);
    vec![
        WantedAlarm {
            name: format!("{prefix}cpu"),
            metric: "CPUUtilization",
            statistic: "Average",
            above: true,
            threshold: alarms.cpu_percent,
            evaluation_periods: 2,
            description: format!(
                "CPU of {} above {}% for 10 minutes",
                spec.id, alarms.cpu_percent
            ),
        },
        WantedAlarm {
            name: format!("{prefix}connections"),
            metric: "DatabaseConnections",
            statistic: "Maximum",
            above: true,
            threshold: alarms.connections,
            evaluation_periods: 1,
            description: format!(
                "more than {} connections to {}",
                alarms.connections, spec.id
            ),
        },
        // Aurora storage grows by itself; what runs out on Serverless v2 is capacity.
        if spec.is_aurora() {
            WantedAlarm {
                name: format!("{prefix}capacity"),
                metric: "ACUUtilization",
                statistic: "Average",
                above: true,
                threshold: alarms.acu_percent,
                evaluation_periods: 2,
                description: format!(
                    "{} above {}% of its max_acu for 10 minutes",
                    spec.id, alarms.acu_percent
                ),
            }
        } else {
            WantedAlarm {
                name: format!("{prefix}free-storage"),
                metric: "FreeStorageSpace",
                statistic: "Minimum",
                above: false,
                threshold: alarms.free_storage_bytes.round(),
                evaluation_periods: 1,
                description: format!(
                    "less than {:.1} GiB of storage free on {}",
                    alarms.free_storage_bytes / GIB,
                    spec.id
                ),
            }
        },
        WantedAlarm {
            name: format!("{prefix}freeable-memory"),
            metric: "FreeableMemory",
            statistic: "Minimum",
            above: false,
            threshold: alarms.freeable_memory_bytes.round(),
            evaluation_periods: 2,
            description: format!(
                "less than {:.0} MiB of memory freeable on {} for 10 minutes",
                alarms.freeable_memory_bytes / MIB,
                spec.id
            ),
        },
    ]
}

/// The ARN of SNS topic `name`, None when there is none.
async fn find_topic(aws: &Aws, name: &str) -> Result<Option<String>> {
    let suffix = format!(":{name}");
    let mut next: Option<String> = None;
    loop {
        let page = aws
            .sns
            .list_topics()
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| describe("listing SNS topics", e))?;
        let found = page
            .topics()
            .iter()
            .filter_map(|t| t.topic_arn())
            .find(|arn| arn.ends_with(&suffix));
        if let Some(arn) = found {
            return Ok(Some(arn.to_string()));
        }
        match page.next_token() {
            Some(token) => next = Some(token.to_string()),
            None => return Ok(None),
        }
    }
}

/// Whether `email` is subscribed to the topic (confirmed or pending).
async fn subscribed(aws: &Aws, topic_arn: &str, email: &str) -> Result<bool> {
    let mut next: Option<String> = None;
    loop {
        let page = aws
            .sns
            .list_subscriptions_by_topic()
            .topic_arn(topic_arn)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| describe("listing the topic's subscriptions", e))?;
        let found = page
            .subscriptions()
            .iter()
            .any(|s| s.protocol() == Some("email") && s.endpoint() == Some(email));
        match page.next_token() {
            _ if found => return Ok(true),
            Some(token) => next = Some(token.to_string()),
            None => return Ok(false),
        }
    }
}

/// Envs applied at once may share a topic (`alarms.topic`): one of them creates it and
/// subscribes the email, the others find it done.
static SHARED_TOPICS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Reads the topic (by name), its email subscription, and our alarms of the instance.
pub(crate) fn observe(aws: &Aws, spec: &InstanceSpec) -> Result<ObservedAlarms> {
    let Some(wanted) = &spec.alarms else {
        return Ok(ObservedAlarms::default());
    };
    aws.block_on(async {
        let topic_arn = find_topic(aws, &wanted.topic).await?;
        let email_subscribed = match (&topic_arn, &wanted.email) {
            (Some(arn), Some(email)) => subscribed(aws, arn, email).await?,
            _ => false,
        };
        let mut alarms = BTreeMap::new();
        let mut next: Option<String> = None;
        loop {
            let page = aws
                .cloudwatch
                .describe_alarms()
                .alarm_name_prefix(alarm_prefix(spec))
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| describe("reading CloudWatch alarms", e))?;
            for alarm in page.metric_alarms() {
                let Some(name) = alarm.alarm_name() else {
                    continue;
                };
                alarms.insert(
                    name.to_string(),
                    ObservedAlarm {
                        metric: alarm.metric_name().unwrap_or_default().to_string(),
                        threshold: alarm.threshold().unwrap_or_default(),
                        above: matches!(
                            alarm.comparison_operator(),
                            Some(
                                aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold
                            )
                        ),
                        actions: alarm.alarm_actions().to_vec(),
                    },
                );
            }
            next = page.next_token().map(str::to_string);
            if next.is_none() {
                break;
            }
        }
        Ok(ObservedAlarms {
            topic_arn,
            email_subscribed,
            alarms,
        })
    })
}

fn change(
    spec: &InstanceSpec,
    resource: PlanResource,
    name: &str,
    action: PlanAction,
) -> PlannedChange {
    PlannedChange {
        env: spec.env.clone(),
        resource,
        name: name.into(),
        action,
        attributes: Vec::new(),
    }
}

fn attribute(name: &str, from: Option<String>, to: String) -> AttributeChange {
    AttributeChange {
        name: name.into(),
        from,
        to,
        when: ChangeWhen::Immediately,
    }
}

/// The topic, the subscription and each alarm: create, modify (threshold, comparison, target)
/// or nothing.
pub(crate) fn plan(spec: &InstanceSpec, observed: &ObservedAlarms) -> Vec<PlannedChange> {
    let Some(wanted_spec) = &spec.alarms else {
        return Vec::new();
    };
    let mut changes = vec![change(
        spec,
        PlanResource::SnsTopic,
        &wanted_spec.topic,
        if observed.topic_arn.is_some() {
            PlanAction::None
        } else {
            PlanAction::Create
        },
    )];
    if let Some(email) = &wanted_spec.email {
        changes.push(change(
            spec,
            PlanResource::SnsSubscription,
            email,
            if observed.email_subscribed {
                PlanAction::None
            } else {
                PlanAction::Create
            },
        ));
    }
    for alarm in wanted(spec, wanted_spec) {
        let mut planned = change(spec, PlanResource::Alarm, &alarm.name, PlanAction::None);
        let comparison = |above: bool| if above { "above" } else { "below" };
        let to = format!(
            "{} {} {}",
            alarm.metric,
            comparison(alarm.above),
            alarm.threshold
        );
        match observed.alarms.get(&alarm.name) {
            None => {
                planned.action = PlanAction::Create;
                planned.attributes.push(attribute("fires when", None, to));
                planned.attributes.push(attribute(
                    "notifies",
                    None,
                    format!("sns:{}", wanted_spec.topic),
                ));
            }
            Some(have) => {
                let from = format!(
                    "{} {} {}",
                    have.metric,
                    comparison(have.above),
                    have.threshold
                );
                if from != to {
                    planned
                        .attributes
                        .push(attribute("fires when", Some(from), to));
                }
                let topic_suffix = format!(":{}", wanted_spec.topic);
                let targets_topic = have.actions.len() == 1
                    && have.actions.iter().all(|a| a.ends_with(&topic_suffix));
                if !targets_topic {
                    planned.attributes.push(attribute(
                        "notifies",
                        Some(have.actions.join(", ")),
                        format!("sns:{}", wanted_spec.topic),
                    ));
                }
                if !planned.attributes.is_empty() {
                    planned.action = PlanAction::Modify;
                }
            }
        }
        changes.push(planned);
    }
    changes
}

/// Makes the planned alarm changes; returns the alarm names (all of them, changed or not) and
/// the topic they notify.
pub(crate) fn apply(
    aws: &Aws,
    spec: &InstanceSpec,
    observed: &ObservedAlarms,
    planned: &[PlannedChange],
    progress: &mut Progress,
) -> Result<(Vec<String>, Option<String>)> {
    let Some(wanted_spec) = &spec.alarms else {
        return Ok((Vec::new(), None));
    };
    let pending = |resource: PlanResource, name: &str| {
        planned
            .iter()
            .any(|c| c.resource == resource && c.name == name && c.action != PlanAction::None)
    };
    let shared = SHARED_TOPICS.lock().unwrap_or_else(|e| e.into_inner());
    let found = match &observed.topic_arn {
        Some(arn) => Some(arn.clone()),
        None => aws.block_on(find_topic(aws, &wanted_spec.topic))?,
    };
    let topic_arn = match found {
        Some(arn) => arn,
        None => {
            let tags = spec
                .tags
                .iter()
                .map(|(k, v)| aws_sdk_sns::types::Tag::builder().key(k).value(v).build())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::Failed(format!("tagging the SNS topic: {e}")))?;
            let created = aws
                .block_on(
                    aws.sns
                        .create_topic()
                        .name(&wanted_spec.topic)
                        .set_tags(Some(tags))
                        .send(),
                )
                .map_err(|e| describe("creating the SNS topic", e))?;
            let arn = created.topic_arn().unwrap_or_default().to_string();
            progress.did(format!("created SNS topic {arn}"));
            arn
        }
    };
    if let Some(email) = &wanted_spec.email {
        let wanted_now = pending(PlanResource::SnsSubscription, email)
            && !aws.block_on(subscribed(aws, &topic_arn, email))?;
        if wanted_now {
            aws.block_on(
                aws.sns
                    .subscribe()
                    .topic_arn(&topic_arn)
                    .protocol("email")
                    .endpoint(email)
                    .send(),
            )
            .map_err(|e| describe("subscribing the email to the topic", e))?;
            progress.did(format!(
                "subscribed {email} to {}: AWS sent it a confirmation link to click",
                wanted_spec.topic
            ));
        }
    }
    drop(shared);
    let mut names = Vec::new();
    for alarm in wanted(spec, wanted_spec) {
        if pending(PlanResource::Alarm, &alarm.name) {
            put_alarm(aws, spec, &alarm, &topic_arn)?;
            progress.did(format!("set alarm {} ({})", alarm.name, alarm.description));
        }
        names.push(alarm.name);
    }
    Ok((names, Some(topic_arn)))
}

fn put_alarm(aws: &Aws, spec: &InstanceSpec, alarm: &WantedAlarm, topic_arn: &str) -> Result<()> {
    use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic, Tag};
    let dimension = Dimension::builder()
        .name("DBInstanceIdentifier")
        .value(spec.monitored_instance())
        .build();
    let tags = spec
        .tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<Vec<_>>();
    aws.block_on(
        aws.cloudwatch
            .put_metric_alarm()
            .alarm_name(&alarm.name)
            .alarm_description(&alarm.description)
            .namespace("AWS/RDS")
            .metric_name(alarm.metric)
            .dimensions(dimension)
            .statistic(Statistic::from(alarm.statistic))
            .period(PERIOD_SECONDS)
            .evaluation_periods(alarm.evaluation_periods)
            .threshold(alarm.threshold)
            .comparison_operator(if alarm.above {
                ComparisonOperator::GreaterThanThreshold
            } else {
                ComparisonOperator::LessThanThreshold
            })
            // A stopped dev instance sends no data: that is not an emergency.
            .treat_missing_data("notBreaching")
            .alarm_actions(topic_arn)
            .ok_actions(topic_arn)
            .set_tags(Some(tags))
            .send(),
    )
    .map_err(|e| describe(&format!("setting alarm {}", alarm.name), e))?;
    Ok(())
}
