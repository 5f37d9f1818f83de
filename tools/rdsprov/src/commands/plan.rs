//! `rdsprov plan --spec F`: what `apply` would change on AWS for each env (all envs read at
//! once), and an estimate of the monthly cost.

use super::common::{env_of, read_spec, select};
use crate::aws::progress::{all_envs, each_env};
use crate::aws::{observe, plan, pricing, Aws};
use dbtools::contract::{Plan, PlanAction, Provider};
use dbtools::output::Output;
use dbtools::{ExitStatus, Result};
use std::path::Path;

pub(super) fn aws(out: Output, path: &Path, envs: &[String]) -> Result<ExitStatus> {
    let spec = read_spec(path)?;
    let chosen = select(&spec, envs)?;
    let aws = Aws::connect(&spec.region)?;
    let planned = all_envs(each_env(&chosen, env_of, |instance| {
        let observed = observe::observe(&aws, instance)?;
        let planned = plan::plan(instance, &observed);
        plan::refusal(instance, &observed, &planned).map_err(dbtools::Error::BadInput)?;
        Ok(planned)
    }))?;
    let changes: Vec<_> = planned.into_iter().flatten().collect();
    let chosen: Vec<_> = chosen.into_iter().cloned().collect();
    let result = Plan {
        provider: Provider::Aws,
        region: spec.region.clone(),
        up_to_date: changes.iter().all(|c| c.action == PlanAction::None),
        changes,
        cost: pricing::estimate(&chosen),
    };
    out.emit(&result, || render(&result))?;
    Ok(ExitStatus::Success)
}

fn render(plan: &Plan) -> String {
    let mut text = String::new();
    for change in &plan.changes {
        text.push_str(&format!(
            "{:6} {} {} (env {})\n",
            change.action, change.resource, change.name, change.env
        ));
        for attribute in &change.attributes {
            text.push_str(&format!(
                "         {}: {} → {} ({})\n",
                attribute.name,
                attribute.from.clone().unwrap_or_else(|| "-".into()),
                attribute.to,
                attribute.when
            ));
        }
    }
    if plan.up_to_date {
        text.push_str("nothing to change\n");
    }
    text.push_str(&format!(
        "\nestimated cost: ${:.2}/month ({}; prices as of {})\n",
        plan.cost.monthly_usd, plan.cost.label, plan.cost.prices_as_of
    ));
    for line in &plan.cost.lines {
        text.push_str(&format!(
            "  {} {}: ${:.2} — {}\n",
            line.env, line.id, line.monthly_usd, line.detail
        ));
    }
    text
}
