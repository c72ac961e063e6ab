//! Shards: which units of a run one process runs when a run is split over several processes
//! (`run --shard I/N`, or the index a scheduler's job array puts in the environment).
//!
//! The assignment is part of the store's format (docs/STORE.md): **the unit (condition,
//! replicate) belongs to shard `replicate mod N`**. Every condition of one replicate index goes
//! to the same shard, so each shard holds whole pairs (a paired test of a partial run compares
//! like with like), every shard gets every condition, and shard sizes differ by at most one
//! replicate index. Nothing about a unit's seed depends on its shard.

use crate::error::Error;

/// The most shards a run may be split into: far more than any job array, and small enough that
/// per-shard tables stay small.
pub const MAX_SHARDS: u64 = 100_000;

/// The variable giving the shard count where the scheduler's environment does not
/// (a Kubernetes Indexed Job, an AWS Batch array job without `AWS_BATCH_JOB_ARRAY_SIZE`).
pub const SHARD_COUNT_ENV: &str = "CRYSTALLIZE_SHARD_COUNT";

/// Shard `index` of `count` (`0 <= index < count`): the units whose replicate index is
/// `index` modulo `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u64,
    count: u64,
}

impl Shard {
    /// Every unit: the one shard of a run in one piece.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`; an error unless `count` is 1 to 100000 (`MAX_SHARDS`) and `index` is
    /// below it.
    pub fn new(index: u64, count: u64) -> Result<Shard, Error> {
        let bad = |why: String| Error::BadOption { option: "--shard".into(), value: format!("{index}/{count}"), why };
        if count == 0 || count > MAX_SHARDS {
            return Err(bad(format!("the shard count must be 1 to {MAX_SHARDS}")));
        }
        if index >= count {
            return Err(bad(format!(
                "shards are numbered from 0: a run in {count} shards has shards 0/{count} to {}/{count}",
                count - 1
            )));
        }
        Ok(Shard { index, count })
    }

    /// The shard's index, from 0.
    pub fn index(self) -> u64 {
        self.index
    }

    /// How many shards the run is split into.
    pub fn count(self) -> u64 {
        self.count
    }

    /// Whether the units of replicate index `replicate` belong to this shard.
    pub fn contains(self, replicate: u64) -> bool {
        replicate % self.count == self.index
    }

    /// Whether some replicate index belongs to both shards: `a ≡ b (mod gcd(n, m))`.
    pub fn overlaps(self, other: Shard) -> bool {
        let g = gcd(self.count, other.count);
        self.index % g == other.index % g
    }

    /// Parses `I/N` (what `--shard` takes besides `auto`).
    pub fn parse(text: &str) -> Result<Shard, Error> {
        let bad = |why: &str| Error::BadOption { option: "--shard".into(), value: text.to_owned(), why: why.into() };
        let Some((index, count)) = text.split_once('/') else {
            return Err(bad(
                "write I/N: shard I (from 0) of N, e.g. 0/4; or auto, to read it from a job array's environment",
            ));
        };
        let number = |part: &str| part.trim().parse::<u64>().ok();
        match (number(index), number(count)) {
            (Some(index), Some(count)) => Shard::new(index, count).map_err(|_| {
                bad(&if count == 0 || count > MAX_SHARDS {
                    format!("the shard count N must be 1 to {MAX_SHARDS}")
                } else {
                    format!("shards are numbered from 0: N={count} has shards 0/{count} to {}/{count}", count - 1)
                })
            }),
            _ => Err(bad("I and N must be whole numbers: shard I (from 0) of N, e.g. 0/4")),
        }
    }

    /// The shard a job array task is, from its environment (`--shard auto`): Slurm
    /// (`SLURM_ARRAY_TASK_ID` of `count` or `CRYSTALLIZE_SHARD_COUNT` when given, so that any
    /// subset of the tasks may be resubmitted; else `SLURM_ARRAY_TASK_ID` minus
    /// `SLURM_ARRAY_TASK_MIN`, of `SLURM_ARRAY_TASK_COUNT`, for a contiguous array), a
    /// Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`, of `count` or `CRYSTALLIZE_SHARD_COUNT`), an
    /// AWS Batch array job (`AWS_BATCH_JOB_ARRAY_INDEX`, of `AWS_BATCH_JOB_ARRAY_SIZE`, `count`
    /// or `CRYSTALLIZE_SHARD_COUNT`). `var` reads a variable (the process's environment, or a test's).
    pub fn from_environment(count: Option<u64>, var: impl Fn(&str) -> Option<String>) -> Result<Shard, Error> {
        let auto = |why: String| Error::BadOption { option: "--shard".into(), value: "auto".into(), why };
        let read = |name: &str| -> Result<Option<u64>, Error> {
            match var(name).filter(|v| !v.trim().is_empty()) {
                None => Ok(None),
                Some(value) => value
                    .trim()
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| auto(format!("{name} is '{value}', not a whole number"))),
            }
        };
        let given_count = || -> Result<Option<u64>, Error> {
            match count {
                Some(count) => Ok(Some(count)),
                None => read(SHARD_COUNT_ENV),
            }
        };
        let (index, count, source) = if let Some(id) = read("SLURM_ARRAY_TASK_ID")? {
            match given_count()? {
                // The task ids are the shard indices: any subset of 0..N-1 (a resubmission of
                // the missing shards, --array=1,5) is right.
                Some(count) => (id, count, "the Slurm array (SLURM_ARRAY_TASK_ID, of --shard-count)"),
                None => {
                    let count = read("SLURM_ARRAY_TASK_COUNT")?
                        .ok_or_else(|| auto("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not".into()))?;
                    let min = read("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
                    let index = id
                        .checked_sub(min)
                        .ok_or_else(|| auto(format!("SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}")))?;
                    let source = "the Slurm array (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of \
                                  SLURM_ARRAY_TASK_COUNT; without --shard-count it must be contiguous, e.g. --array=1-8)";
                    (index, count, source)
                }
            }
        } else if let Some(index) = read("JOB_COMPLETION_INDEX")? {
            let count = given_count()?.ok_or_else(|| {
                auto(format!(
                    "JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but not the shard count: pass \
                     --shard-count N or set {SHARD_COUNT_ENV} to the Job's completions"
                ))
            })?;
            (index, count, "the Kubernetes Indexed Job (JOB_COMPLETION_INDEX)")
        } else if let Some(index) = read("AWS_BATCH_JOB_ARRAY_INDEX")? {
            let count = match read("AWS_BATCH_JOB_ARRAY_SIZE")? {
                Some(size) => Some(size),
                None => given_count()?,
            };
            let count = count.ok_or_else(|| {
                auto(format!(
                    "AWS_BATCH_JOB_ARRAY_INDEX is set (an AWS Batch array job) but not the array size: set \
                     AWS_BATCH_JOB_ARRAY_SIZE or {SHARD_COUNT_ENV} in the job's environment, or pass --shard-count N"
                ))
            })?;
            (index, count, "the AWS Batch array job (AWS_BATCH_JOB_ARRAY_INDEX)")
        } else {
            return Err(auto(
                "no job array variables in the environment: --shard auto reads SLURM_ARRAY_TASK_ID (Slurm), \
                 JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or AWS_BATCH_JOB_ARRAY_INDEX (AWS Batch); \
                 outside a job array write --shard I/N"
                    .into(),
            ));
        };
        Shard::new(index, count)
            .map_err(|_| auto(format!("{source} says shard {index} of {count}, which is not a shard")))
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

/// The environment's identity of this job array task, when there is one (`slurm 1234_2`): a
/// later process with the same identity is the same task requeued, so the lease of an earlier
/// one with that identity is of a process the scheduler has ended.
pub(crate) fn scheduler_task(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    if let (Some(job), Some(task)) = (get("SLURM_ARRAY_JOB_ID"), get("SLURM_ARRAY_TASK_ID")) {
        return Some(format!("slurm {job}_{task}"));
    }
    if let Some(job) = get("SLURM_JOB_ID") {
        return Some(format!("slurm {job}"));
    }
    if let (Some(job), Some(_)) = (get("AWS_BATCH_JOB_ID"), get("AWS_BATCH_JOB_ARRAY_INDEX")) {
        return Some(format!("aws-batch {job}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn every_shard_gets_every_condition_and_sizes_differ_by_at_most_one_replicate() {
        for count in 1..7u64 {
            for replicates in [1u64, 5, 10, 13] {
                let sizes: Vec<usize> = (0..count)
                    .map(|i| (0..replicates).filter(|r| Shard::new(i, count).unwrap().contains(*r)).count())
                    .collect();
                assert_eq!(sizes.iter().sum::<usize>() as u64, replicates, "each replicate in exactly one shard");
                assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{sizes:?}");
            }
        }
        assert!(Shard::new(2, 4).unwrap().contains(6) && !Shard::new(2, 4).unwrap().contains(7));
    }

    #[test]
    fn shards_overlap_when_some_replicate_is_in_both() {
        let s = |i, n| Shard::new(i, n).unwrap();
        assert!(!s(0, 4).overlaps(s(1, 4)) && s(1, 4).overlaps(s(1, 4)));
        assert!(s(0, 2).overlaps(s(2, 4)) && !s(0, 2).overlaps(s(1, 4)));
        assert!(s(0, 1).overlaps(s(3, 4)));
        for (a, n) in [(0, 3), (2, 3)] {
            for (b, m) in [(0, 4), (1, 4), (3, 4)] {
                let brute = (0..12).any(|r| s(a, n).contains(r) && s(b, m).contains(r));
                assert_eq!(s(a, n).overlaps(s(b, m)), brute, "{a}/{n} {b}/{m}");
            }
        }
    }

    #[test]
    fn bad_shards_say_what_would_be_valid() {
        let message = |text| Shard::parse(text).unwrap_err().to_string();
        assert!(message("3/2").contains("0/2 to 1/2"), "{}", message("3/2"));
        assert!(message("0/0").contains("1 to 100000"), "{}", message("0/0"));
        assert!(message("x").contains("write I/N"), "{}", message("x"));
        assert!(message("a/b").contains("whole numbers"), "{}", message("a/b"));
        assert_eq!(Shard::parse("1/4").unwrap(), Shard::new(1, 4).unwrap());
        assert_eq!(Shard::parse("1/4").unwrap().to_string(), "1/4");
    }

    #[test]
    fn auto_reads_slurm_kubernetes_and_aws_batch() {
        let slurm = [("SLURM_ARRAY_TASK_ID", "5"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_MIN", "3")];
        assert_eq!(Shard::from_environment(None, env(&slurm)).unwrap(), Shard::new(2, 4).unwrap());
        let zero = [("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_COUNT", "4")];
        assert_eq!(Shard::from_environment(None, env(&zero)).unwrap(), Shard::new(3, 4).unwrap());
        let k8s = [("JOB_COMPLETION_INDEX", "1")];
        assert!(Shard::from_environment(None, env(&k8s)).unwrap_err().to_string().contains("--shard-count"));
        assert_eq!(Shard::from_environment(Some(3), env(&k8s)).unwrap(), Shard::new(1, 3).unwrap());
        let k8s_env = [("JOB_COMPLETION_INDEX", "2"), (SHARD_COUNT_ENV, "3")];
        assert_eq!(Shard::from_environment(None, env(&k8s_env)).unwrap(), Shard::new(2, 3).unwrap());
        let aws = [("AWS_BATCH_JOB_ARRAY_INDEX", "0"), ("AWS_BATCH_JOB_ARRAY_SIZE", "2")];
        assert_eq!(Shard::from_environment(None, env(&aws)).unwrap(), Shard::new(0, 2).unwrap());
        let none = Shard::from_environment(None, env(&[])).unwrap_err().to_string();
        assert!(none.contains("no job array variables"), "{none}");
        let past = [("SLURM_ARRAY_TASK_ID", "4"), ("SLURM_ARRAY_TASK_COUNT", "4")];
        assert!(Shard::from_environment(None, env(&past)).unwrap_err().to_string().contains("not a shard"));
        // With the count given, the task id is the shard: a resubmitted subset (--array=1,3).
        let subset = [("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_MIN", "1"), ("SLURM_ARRAY_TASK_COUNT", "2")];
        assert_eq!(Shard::from_environment(Some(4), env(&subset)).unwrap(), Shard::new(3, 4).unwrap());
        let junk = [("SLURM_ARRAY_TASK_ID", "x"), ("SLURM_ARRAY_TASK_COUNT", "4")];
        assert!(Shard::from_environment(None, env(&junk)).unwrap_err().to_string().contains("not a whole number"));
    }

    #[test]
    fn a_requeued_task_has_the_same_identity() {
        let slurm = [("SLURM_ARRAY_JOB_ID", "77"), ("SLURM_ARRAY_TASK_ID", "2"), ("SLURM_JOB_ID", "80")];
        assert_eq!(scheduler_task(env(&slurm)).as_deref(), Some("slurm 77_2"));
        assert_eq!(scheduler_task(env(&[])), None);
    }
}
