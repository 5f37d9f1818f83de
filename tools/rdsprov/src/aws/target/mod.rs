//! What an env's data lives in on AWS — an RDS instance or an Aurora cluster — behind one
//! trait, so the steps above it (observe, plan, apply, wait, snapshot, restore, destroy) are
//! written once. Each implementation is the only place that knows its kind's API calls; which
//! kind an env has is decided here, from the spec, and nowhere else.
//!
//! Calls are async (boxed by `async_trait`, so the trait stays object-safe): a wait polls
//! inside its own async loop, everything else runs them with `Aws::block_on`.

mod api;
pub(crate) mod cluster;
pub(crate) mod instance;

pub(crate) use api::{group_ids, tags, Modify, New, On, Restore, RestoreSource, Target};

use crate::aws::spec::InstanceSpec;

/// The target an env's spec describes.
pub(crate) fn of(spec: &InstanceSpec) -> &'static dyn Target {
    if spec.is_aurora() {
        &cluster::AuroraCluster
    } else {
        &instance::RdsInstance
    }
}
