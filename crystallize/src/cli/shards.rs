//! The flags of `run` and `stream` about sharing one run between processes: `--shard`,
//! `--shard-count`, `--run-id`, `--lease-stale`.

use clap::Args;

use crate::error::Error;
use crate::session::{Session, Shard};

/// Which units of a shared run this process runs, and how it shares the run.
#[derive(Args, Debug, Clone, Default)]
pub(super) struct ShardArgs {
    /// Run only shard I of N (from 0: 0/4 to 3/4): the units whose replicate index is I modulo N,
    /// every condition of them. `auto` reads it from a job array's environment (Slurm,
    /// Kubernetes Indexed Job, AWS Batch). Give every shard the same run: --run-id ID or --resume RUN.
    #[arg(long, value_name = "I/N|auto", value_parser = shard_choice)]
    pub shard: Option<ShardChoice>,
    /// The shard count for `--shard auto` where the environment has none (a Kubernetes Indexed
    /// Job's completions; default: $CRYSTALLIZE_SHARD_COUNT).
    #[arg(long, value_name = "N", requires = "shard", value_parser = clap::value_parser!(u64).range(1..=crate::shard::MAX_SHARDS))]
    pub shard_count: Option<u64>,
    /// Store the run as run ID: created by the first process started with it, joined by the
    /// others (which must be started with the same flags and code, or are refused).
    #[arg(long, value_name = "ID", conflicts_with = "resume")]
    pub run_id: Option<String>,
    /// Take over the lease of another process on the same units once its heartbeat is older than
    /// this (it crashed, or its node is gone): 500ms, 30s, 2min (default 60s).
    #[arg(long, value_name = "DURATION", value_parser = super::duration)]
    pub lease_stale: Option<std::time::Duration>,
}

/// `--shard`: a shard, or `auto`.
#[derive(Clone, Copy, Debug)]
pub(super) enum ShardChoice {
    Given(Shard),
    Auto,
}

fn shard_choice(text: &str) -> Result<ShardChoice, String> {
    if text.trim().eq_ignore_ascii_case("auto") {
        return Ok(ShardChoice::Auto);
    }
    Shard::parse(text).map(ShardChoice::Given).map_err(|error| match error {
        Error::BadOption { why, .. } => why,
        other => other.to_string(),
    })
}

impl ShardArgs {
    /// The shard this process runs, `auto` resolved from the environment.
    pub(super) fn shard(&self) -> Result<Option<Shard>, Error> {
        match self.shard {
            None => Ok(None),
            Some(ShardChoice::Given(shard)) => Ok(Some(shard)),
            Some(ShardChoice::Auto) => {
                Shard::from_environment(self.shard_count, |name| std::env::var(name).ok()).map(Some)
            }
        }
    }

    /// `session` with these flags.
    pub(super) fn apply(&self, mut session: Session) -> Result<Session, Error> {
        if let Some(shard) = self.shard()? {
            session = session.shard(shard);
        }
        if let Some(id) = &self.run_id {
            session = session.run_id(id.clone());
        }
        if let Some(stale) = self.lease_stale {
            session = session.lease_stale(stale);
        }
        Ok(session)
    }
}
