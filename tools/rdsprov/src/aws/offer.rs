//! What AWS offers for a new instance today, asked at plan time: the engine versions it creates
//! new instances (or Aurora members) of the spec's class on, from
//! DescribeOrderableDBInstanceOptions, and the ApplyType of each parameter, from
//! DescribeEngineDefaultParameters (…ClusterParameters on Aurora). A dated list goes stale in
//! months — RDS stops creating new instances on older minors (14.14–14.17, 15.9–15.12,
//! 16.5–16.8, 17.1–17.4 since 2026-05-01) — so only AWS's answer decides; `resolve` turns the
//! spec's `engine_version` (a major alone takes the newest minor offered) into the exact one.
//! <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DescribeOrderableDBInstanceOptions.html>
//! <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DescribeEngineDefaultParameters.html>

use crate::aws::spec::InstanceSpec;
use crate::aws::{describe, Aws};
use aws_sdk_rds::types::EngineDefaults;
use dbtools::Result;
use std::collections::BTreeMap;

/// The versions AWS creates new instances of the spec's class on, oldest first; on Aurora,
/// the Serverless v2 capacity range each version takes.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Offer {
    pub versions: Vec<String>,
    pub capacity: BTreeMap<String, Capacity>,
}

/// The Serverless v2 range a version takes (ServerlessV2FeaturesSupport): the least minimum
/// (0 where it pauses when idle, else 0.5) and the greatest maximum (256 on recent versions,
/// 128 on older ones).
/// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_ServerlessV2FeaturesSupport.html>
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Capacity {
    pub least: f64,
    pub most: f64,
}

/// When a parameter change takes effect: ApplyType, as AWS reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApplyType {
    /// Takes effect at once (`ApplyMethod=immediate`).
    Dynamic,
    /// Only after a reboot: AWS refuses `immediate` for it (`pending-reboot` only).
    Static,
}

/// The parameters of a family, by name, with their apply type; absent: not a parameter of the
/// family, or one AWS does not let us modify.
pub(crate) type ApplyTypes = BTreeMap<String, ApplyType>;

/// Asks AWS which versions it creates new instances of the spec's class on (every page).
pub(crate) async fn read(aws: &Aws, spec: &InstanceSpec) -> Result<Offer> {
    let mut versions: Vec<String> = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = aws
            .rds
            .describe_orderable_db_instance_options()
            .engine(&spec.engine)
            .db_instance_class(&spec.class)
            .vpc(true)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| {
                describe(
                    "asking AWS which engine versions it offers (DescribeOrderableDBInstanceOptions)",
                    e,
                )
            })?;
        for option in page.orderable_db_instance_options() {
            if let Some(version) = option.engine_version() {
                if !versions.iter().any(|v| v == version) {
                    versions.push(version.to_string());
                }
            }
        }
        marker = page.marker().map(str::to_string);
        if marker.is_none() {
            break;
        }
    }
    versions.sort_by_key(|v| numbers(v));
    let capacity = if spec.is_aurora() {
        capacities(aws, spec).await?
    } else {
        BTreeMap::new()
    };
    Ok(Offer { versions, capacity })
}

/// The Serverless v2 range of every version of the spec's engine (DescribeDBEngineVersions).
async fn capacities(aws: &Aws, spec: &InstanceSpec) -> Result<BTreeMap<String, Capacity>> {
    let mut found = BTreeMap::new();
    let mut marker: Option<String> = None;
    loop {
        let page = aws
            .rds
            .describe_db_engine_versions()
            .engine(&spec.engine)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| {
                describe(
                    "asking AWS the capacity each version takes (DescribeDBEngineVersions)",
                    e,
                )
            })?;
        for version in page.db_engine_versions() {
            let (Some(name), Some(support)) = (
                version.engine_version(),
                version.serverless_v2_features_support(),
            ) else {
                continue;
            };
            found.insert(
                name.to_string(),
                Capacity {
                    least: support.min_capacity().unwrap_or(0.5),
                    most: support.max_capacity().unwrap_or(128.0),
                },
            );
        }
        marker = page.marker().map(str::to_string);
        if marker.is_none() {
            break;
        }
    }
    Ok(found)
}

/// Whether `version` takes the spec's Serverless v2 range, as AWS says of it; an error says
/// what it takes.
pub(crate) fn check_capacity(
    spec: &InstanceSpec,
    offer: &Offer,
    version: &str,
) -> Result<(), String> {
    let (Some(range), Some(takes)) = (spec.serverless, offer.capacity.get(version)) else {
        return Ok(());
    };
    if range.min_acu < takes.least {
        return Err(format!(
            "min_acu {}: {} {version} takes {} ACU at least (ServerlessV2FeaturesSupport; pausing at 0 ACU needs a version that supports auto-pause): raise min_acu or engine_version",
            range.min_acu, spec.engine, takes.least
        ));
    }
    if range.max_acu > takes.most {
        return Err(format!(
            "max_acu {}: {} {version} takes {} ACU at most (ServerlessV2FeaturesSupport): lower max_acu or raise engine_version",
            range.max_acu, spec.engine, takes.most
        ));
    }
    Ok(())
}

/// The apply type of every modifiable parameter of the spec's family (every page).
pub(crate) async fn apply_types(aws: &Aws, spec: &InstanceSpec) -> Result<ApplyTypes> {
    let family = spec.parameter_group_family();
    let mut types = ApplyTypes::new();
    let mut marker: Option<String> = None;
    loop {
        // The same answer (EngineDefaults) from the cluster or the instance call.
        const WHAT: &str = "reading the parameters' apply types";
        let defaults = if spec.is_aurora() {
            let request = aws.rds.describe_engine_default_cluster_parameters();
            let request = request.db_parameter_group_family(&family);
            let page = request.set_marker(marker.take()).send().await;
            page.map_err(|e| describe(WHAT, e))?.engine_defaults
        } else {
            let request = aws.rds.describe_engine_default_parameters();
            let request = request.db_parameter_group_family(&family);
            let page = request.set_marker(marker.take()).send().await;
            page.map_err(|e| describe(WHAT, e))?.engine_defaults
        };
        let defaults = defaults.unwrap_or_else(|| EngineDefaults::builder().build());
        let (parameters, next) = (defaults.parameters, defaults.marker);
        for parameter in parameters.unwrap_or_default() {
            let (Some(name), Some(kind)) = (parameter.parameter_name(), parameter.apply_type())
            else {
                continue;
            };
            if parameter.is_modifiable() == Some(false) {
                continue;
            }
            // Only what AWS calls dynamic is sent `immediate`; anything else waits for a
            // reboot, which AWS takes for every parameter.
            let kind = if kind.eq_ignore_ascii_case("dynamic") {
                ApplyType::Dynamic
            } else {
                ApplyType::Static
            };
            types.insert(name.to_string(), kind);
        }
        marker = next;
        if marker.is_none() {
            break;
        }
    }
    Ok(types)
}

/// `16.10` → [16, 10]: versions compare as numbers, not text.
fn numbers(version: &str) -> Vec<u32> {
    version
        .split('.')
        .map(|part| part.parse().unwrap_or(0))
        .collect()
}

/// The major of a version: `16` of `16.4` and of `16`.
pub(crate) fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or_default()
}

/// The exact version a spec's `engine_version` gets: itself when AWS offers it, the newest
/// minor AWS offers for a major alone; otherwise what AWS does offer, said.
pub(crate) fn resolve(spec: &InstanceSpec, offer: &Offer) -> Result<String, String> {
    let wanted = spec.engine_version.as_str();
    let what = format!("{} {}", spec.engine, spec.class);
    if offer.versions.is_empty() {
        return Err(format!(
            "AWS offers no {} version for class {} here (DescribeOrderableDBInstanceOptions): choose another class",
            spec.engine, spec.class
        ));
    }
    let same_major: Vec<&str> = offer
        .versions
        .iter()
        .map(String::as_str)
        .filter(|v| major(v) == major(wanted))
        .collect();
    let whole_offer = || offer.versions.join(", ");
    if !wanted.contains('.') {
        return same_major.last().map(|v| v.to_string()).ok_or_else(|| {
            format!(
                "engine_version {wanted:?}: AWS offers no {wanted} for new {what} instances; it offers {}",
                whole_offer()
            )
        });
    }
    if same_major.contains(&wanted) {
        return Ok(wanted.to_string());
    }
    let offered = if same_major.is_empty() {
        whole_offer()
    } else {
        same_major.join(", ")
    };
    Err(format!(
        "engine_version {wanted:?}: AWS no longer creates new {what} instances on {wanted} (DescribeOrderableDBInstanceOptions); it offers {offered}: name one of those, or the major alone (\"{}\") for the newest",
        major(wanted)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::spec;

    fn spec_with(version: &str) -> InstanceSpec {
        let text = format!(
            "region = \"eu-west-1\"\n[env.dev]\nid = \"shop-dev\"\nclass = \"db.t4g.micro\"\nengine_version = \"{version}\"\n"
        );
        spec::parse(&text, "test").unwrap().instances.remove(0)
    }

    fn offer(versions: &[&str]) -> Offer {
        let mut versions: Vec<String> = versions.iter().map(|v| v.to_string()).collect();
        versions.sort_by_key(|v| numbers(v));
        Offer {
            versions,
            capacity: BTreeMap::new(),
        }
    }

    #[test]
    fn a_major_alone_takes_the_newest_minor_by_number() {
        let offer = offer(&["16.9", "16.10", "16.11", "17.5"]);
        assert_eq!(resolve(&spec_with("16"), &offer).unwrap(), "16.11");
        assert_eq!(resolve(&spec_with("17"), &offer).unwrap(), "17.5");
    }

    #[test]
    fn an_offered_version_is_itself() {
        let offer = offer(&["16.9", "16.10"]);
        assert_eq!(resolve(&spec_with("16.9"), &offer).unwrap(), "16.9");
    }

    #[test]
    fn a_version_no_longer_offered_names_what_is() {
        let offer = offer(&["15.13", "16.9", "16.10"]);
        let error = resolve(&spec_with("16.4"), &offer).unwrap_err();
        assert!(error.contains("no longer creates"), "{error}");
        assert!(
            error.contains("16.9, 16.10") && !error.contains("15.13"),
            "{error}"
        );
        assert!(error.contains("\"16\""), "{error}");
        let error = resolve(&spec_with("18"), &offer).unwrap_err();
        assert!(
            error.contains("offers no 18") && error.contains("15.13, 16.9, 16.10"),
            "{error}"
        );
    }

    #[test]
    fn an_empty_offer_says_the_class() {
        let error = resolve(&spec_with("16"), &offer(&[])).unwrap_err();
        assert!(error.contains("class db.t4g.micro"), "{error}");
    }
}
