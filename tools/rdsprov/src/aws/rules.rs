//! What AWS refuses, checked before any call, so a spec AWS would reject fails `plan` with the
//! rule instead of failing `apply` half-way. Each rule names the AWS documentation it comes
//! from; the AWS double the tests run against (`tests/support/aws_fault_proxy.py`) enforces
//! the same rules with the same sources.

/// CreateDBInstance / CreateDBCluster, `MasterUsername`: "Must be 1 to 16 letters, numbers, or
/// underscores. First character must be a letter." (instances); "Must be 1 to 16 letters or
/// numbers" (clusters: no underscore).
/// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBInstance.html>,
/// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBCluster.html>
pub(crate) fn master_user(name: &str, aurora: bool) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || (c == '_' && !aurora);
    let valid = (1..=16).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(allowed);
    if valid {
        return Ok(());
    }
    Err(format!(
        "master_user {name:?}: RDS takes 1 to 16 letters, digits{} starting with a letter ({})",
        if aurora { "" } else { " or underscores" },
        if aurora {
            "CreateDBCluster, MasterUsername"
        } else {
            "CreateDBInstance, MasterUsername"
        }
    ))
}

/// `BackupRetentionPeriod`: "Must be a value from 0 to 35" for an instance (0 turns automated
/// backups off), "from 1 to 35" for an Aurora cluster.
/// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBInstance.html>,
/// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBCluster.html>
pub(crate) fn backup_retention(days: i32, aurora: bool) -> Result<(), String> {
    let least = i32::from(aurora);
    if (least..=35).contains(&days) {
        return Ok(());
    }
    Err(format!(
        "backup_retention_days {days}: {} keeps automated backups {least} to 35 days",
        if aurora { "an Aurora cluster" } else { "RDS" }
    ))
}

/// Storage autoscaling: "set the maximum storage threshold to at least 10% more than the
/// current allocated storage", else "Invalid max storage size".
/// <https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_PIOPS.Autoscaling.html>
pub(crate) fn max_storage(storage_gb: i32, max_storage_gb: i32) -> Result<(), String> {
    let least = (i64::from(storage_gb) * 11 + 9) / 10;
    if i64::from(max_storage_gb) >= least {
        return Ok(());
    }
    Err(format!(
        "max_storage_gb {max_storage_gb}: RDS wants the autoscaling limit at least 10% above storage_gb {storage_gb}, i.e. {least} or more (Managing capacity automatically with Amazon RDS storage autoscaling)"
    ))
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const DAY: u32 = 24 * 60;
const WEEK: u32 = 7 * DAY;

/// `hh24:mi` as minutes of the day.
fn clock(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    let two_digits = |t: &str| t.len() == 2 && t.chars().all(|c| c.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// `ddd:hh24:mi` as minutes of the week (Monday 00:00 is 0); the day in any case.
fn weekly(text: &str) -> Option<u32> {
    let (day, time) = text.split_once(':')?;
    let day = DAYS.iter().position(|d| d.eq_ignore_ascii_case(day))?;
    Some(u32::try_from(day).ok()? * DAY + clock(time)?)
}

/// Minutes from `start` to `end` on a circle of `length` (a window may pass midnight or the
/// week's end).
fn span(start: u32, end: u32, length: u32) -> u32 {
    (end + length - start) % length
}

/// Whether `[a, a + a_len)` and `[b, b + b_len)` meet on a circle of `length`.
fn meet(a: u32, a_len: u32, b: u32, b_len: u32, length: u32) -> bool {
    span(a, b, length) < a_len || span(b, a, length) < b_len
}

/// `PreferredBackupWindow`: "Must be in the format hh24:mi-hh24:mi. Must be in Universal
/// Coordinated Time (UTC). Must not conflict with the preferred maintenance window. Must be at
/// least 30 minutes." `PreferredMaintenanceWindow`: "Must be in the format
/// ddd:hh24:mi-ddd:hh24:mi. The day values must be mon | tue | wed | thu | fri | sat | sun. …
/// Must not conflict with the preferred backup window. Must be at least 30 minutes."
/// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBInstance.html>
pub(crate) fn windows(backup: Option<&str>, maintenance: Option<&str>) -> Result<(), String> {
    let daily = match backup {
        None => None,
        Some(text) => {
            let parsed = text
                .split_once('-')
                .and_then(|(from, to)| Some((clock(from)?, clock(to)?)));
            let Some((from, to)) = parsed else {
                return Err(format!(
                    "backup_window {text:?}: write it hh24:mi-hh24:mi in UTC, e.g. \"03:00-03:30\""
                ));
            };
            let length = span(from, to, DAY);
            if length < 30 {
                return Err(format!(
                    "backup_window {text:?}: RDS wants at least 30 minutes"
                ));
            }
            Some((from, length))
        }
    };
    let weekly_window = match maintenance {
        None => None,
        Some(text) => {
            let parsed = text
                .split_once('-')
                .and_then(|(from, to)| Some((weekly(from)?, weekly(to)?)));
            let Some((from, to)) = parsed else {
                return Err(format!(
                    "maintenance_window {text:?}: write it ddd:hh24:mi-ddd:hh24:mi in UTC, days mon to sun, e.g. \"sun:05:00-sun:05:30\""
                ));
            };
            let length = span(from, to, WEEK);
            if length < 30 {
                return Err(format!(
                    "maintenance_window {text:?}: RDS wants at least 30 minutes"
                ));
            }
            Some((from, length))
        }
    };
    if let (Some((b_from, b_len)), Some((m_from, m_len))) = (daily, weekly_window) {
        let overlaps = (0..7).any(|day| meet(day * DAY + b_from, b_len, m_from, m_len, WEEK));
        if overlaps {
            return Err(format!(
                "backup_window {:?} and maintenance_window {:?} overlap: RDS wants them apart",
                backup.unwrap_or_default(),
                maintenance.unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// `DBSnapshotIdentifier`: 1 to 255 letters, digits and hyphens;
/// `DBClusterSnapshotIdentifier`: "Must contain from 1 to 63 letters, numbers, or hyphens";
/// both: "First character must be a letter. Can't end with a hyphen or contain two consecutive
/// hyphens."
/// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBSnapshot.html>,
/// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBClusterSnapshot.html>
pub(crate) fn snapshot_id(id: &str, cluster: bool) -> Result<(), String> {
    let most = snapshot_id_limit(cluster);
    let valid = (1..=most).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !id.contains("--")
        && !id.ends_with('-');
    if valid {
        return Ok(());
    }
    Err(format!(
        "{} id {id:?}: use 1 to {most} letters, digits and hyphens, starting with a letter, without -- or a trailing -",
        if cluster { "cluster snapshot" } else { "snapshot" }
    ))
}

fn snapshot_id_limit(cluster: bool) -> usize {
    if cluster {
        63
    } else {
        255
    }
}

/// A snapshot id made of `id` and `suffix` (a timestamp, `final-…`) that fits the kind's limit:
/// the id part is shortened when it must be, never the suffix.
pub(crate) fn snapshot_name(id: &str, suffix: &str, cluster: bool) -> String {
    let room = snapshot_id_limit(cluster).saturating_sub(suffix.len() + 1);
    let head = id[..id.len().min(room)].trim_end_matches('-');
    format!("{head}-{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_users_as_rds_takes_them() {
        assert!(master_user("postgres", false).is_ok());
        assert!(master_user("app_admin", false).is_ok());
        assert!(
            master_user("app_admin", true).is_err(),
            "no underscore on a cluster"
        );
        let long = master_user("administrator_of_it", false).unwrap_err();
        assert!(long.contains("1 to 16"), "{long}");
        assert!(master_user("1admin", false).is_err());
    }

    #[test]
    fn retention_and_autoscaling_limits() {
        assert!(backup_retention(0, false).is_ok());
        assert!(backup_retention(0, true).is_err());
        assert!(backup_retention(35, true).is_ok());
        assert!(backup_retention(36, false).unwrap_err().contains("0 to 35"));
        assert!(max_storage(100, 110).is_ok());
        assert!(max_storage(20, 22).is_ok());
        let equal = max_storage(20, 20).unwrap_err();
        assert!(equal.contains("22 or more"), "{equal}");
        assert!(max_storage(25, 27).unwrap_err().contains("28 or more"));
    }

    #[test]
    fn windows_have_a_format_a_length_and_stay_apart() {
        assert!(windows(Some("03:00-03:30"), Some("sun:05:00-sun:05:30")).is_ok());
        assert!(windows(Some("23:45-00:15"), Some("Sun:04:30-Sun:05:30")).is_ok());
        assert!(
            windows(None, Some("sat:23:50-sun:00:20")).is_ok(),
            "across the week's end"
        );
        for (backup, maintenance, expected) in [
            (Some("3:00-3:30"), None, "write it hh24:mi-hh24:mi"),
            (Some("03:00-03:20"), None, "at least 30 minutes"),
            (None, Some("sun:05:00-sun:05:20"), "at least 30 minutes"),
            (None, Some("sunday:05:00-sunday:06:00"), "days mon to sun"),
            (None, Some("sun:25:00-sun:26:00"), "ddd:hh24:mi"),
            (Some("05:00-06:00"), Some("wed:05:30-wed:06:30"), "overlap"),
            (Some("23:30-00:30"), Some("mon:00:00-mon:00:40"), "overlap"),
        ] {
            let error = windows(backup, maintenance).unwrap_err();
            assert!(
                error.contains(expected),
                "{backup:?} {maintenance:?}: {error}"
            );
        }
    }

    #[test]
    fn snapshot_ids_fit_their_kind() {
        let long_cluster = "a".repeat(60);
        let name = snapshot_name(&long_cluster, "20261130043600", true);
        assert_eq!(name.len(), 63);
        assert!(snapshot_id(&name, true).is_ok());
        assert!(snapshot_id(&format!("{long_cluster}-1234"), true).is_err());
        assert!(snapshot_id(&format!("{long_cluster}-1234"), false).is_ok());
        let dashed = snapshot_name("abc-def-ghi", "final-2026", true);
        assert_eq!(dashed, "abc-def-ghi-final-2026");
        let cut = snapshot_name(
            &format!("{}-x", "b".repeat(45)),
            "final-20261130043600",
            true,
        );
        assert!(snapshot_id(&cut, true).is_ok(), "{cut}");
    }
}
