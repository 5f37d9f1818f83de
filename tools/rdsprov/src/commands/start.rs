//! `rdsprov start`: start stopped local instances.

use super::common::each_local_instance;
use crate::cli::Selection;
use dbtools::cli::GlobalArgs;
use dbtools::output::Output;
use dbtools::{ExitStatus, Result};

pub(super) fn local(out: Output, global: &GlobalArgs, selection: &Selection) -> Result<ExitStatus> {
    each_local_instance(out, global, selection, |provider, id| provider.start(id))
}
