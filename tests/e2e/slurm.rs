//! The shards of a run on a real Slurm: a one-node cluster of this machine (Debian's slurm-wlm
//! and munge, which `cargo xtask test` installs), started by the test with its own munge key and
//! socket, its own `slurm.conf`, ports and state directories (so that it neither needs nor
//! disturbs a Slurm or munge the machine may run), and stopped by the pids it started, also when
//! the test fails.
//!
//! 1. `submit slurm` a 4-shard job array of the example; its merged `report --json` equals a
//!    single-process run of the same seed, unit for unit.
//!    Resubmitting one task of the complete run runs nothing ("nothing to do", exit 0).
//! 2. Slow units, `scancel` one array task mid-run, `scontrol requeue` it: the run completes and
//!    no unit has two journal records.
//!
//! Without Slurm installed, or not as root (slurmd runs jobs as root here), the test FAILS saying
//! so: it never passes without having run.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crystallize_tests::{records_per_unit, units_by_key, Command, Store, TempDir};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_social_deception");

/// Where Debian puts the programs (sbin is not on every PATH).
const DIRS: [&str; 4] = ["/usr/bin", "/usr/sbin", "/bin", "/sbin"];

fn program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed: this test needs a real Slurm (Debian packages slurm-wlm and munge; \
                 `cargo xtask test` installs them as root, or run `apt-get install -y slurm-wlm munge`)"
            )
        })
}

/// The daemons this test started, stopped by their pids when dropped (also on a panic): jobs
/// still queued are cancelled first, so no job of the test outlives it.
struct Cluster {
    dir: TempDir,
    conf: PathBuf,
    daemons: Vec<(String, Child)>,
}

impl Cluster {
    fn start() -> Cluster {
        let uid = std::process::Command::new("id").arg("-u").output().expect("id -u");
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "this test starts slurmctld and slurmd, which run jobs as root here: run it as root (`cargo xtask test` in CI)"
        );
        for name in ["munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol", "sinfo"] {
            program(name);
        }
        let dir = TempDir::new();
        let root = dir.path().to_path_buf();
        for sub in ["state", "spool", "munge"] {
            std::fs::create_dir_all(root.join(sub)).expect("cluster directories");
        }
        // Its own munge key, readable by root only (munged refuses a key others can read).
        let key = root.join("munge").join("munge.key");
        let mut bytes = vec![0u8; 1024];
        {
            use std::io::Read;
            std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).expect("/dev/urandom");
        }
        std::fs::write(&key, &bytes).expect("munge key");
        set_mode(&key, 0o400);
        let socket = root.join("munge").join("munge.socket");
        let host = hostname();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (ctld_port, d_port) = (free_port(), free_port());
        let conf = root.join("slurm.conf");
        let r = |sub: &str| root.join(sub).display().to_string();
        std::fs::write(
            &conf,
            format!(
                "ClusterName=crystallize{ctld_port}\n\
                 SlurmctldHost={host}(127.0.0.1)\n\
                 SlurmUser=root\n\
                 SlurmdUser=root\n\
                 AuthType=auth/munge\n\
                 CredType=cred/munge\n\
                 AuthInfo=socket={socket}\n\
                 ProctrackType=proctrack/linuxproc\n\
                 TaskPlugin=task/none\n\
                 SelectType=select/cons_tres\n\
                 SelectTypeParameters=CR_Core\n\
                 SlurmctldPort={ctld_port}\n\
                 SlurmdPort={d_port}\n\
                 StateSaveLocation={state}\n\
                 SlurmdSpoolDir={spool}\n\
                 SlurmctldPidFile={ctld_pid}\n\
                 SlurmdPidFile={d_pid}\n\
                 SlurmctldLogFile={ctld_log}\n\
                 SlurmdLogFile={d_log}\n\
                 ReturnToService=2\n\
                 MpiDefault=none\n\
                 SchedulerType=sched/backfill\n\
                 JobCompType=jobcomp/none\n\
                 AccountingStorageType=accounting_storage/none\n\
                 JobAcctGatherType=jobacct_gather/none\n\
                 KillWait=10\n\
                 MinJobAge=300\n\
                 NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN\n\
                 PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP\n",
                socket = socket.display(),
                state = r("state"),
                spool = r("spool"),
                ctld_pid = r("slurmctld.pid"),
                d_pid = r("slurmd.pid"),
                ctld_log = r("slurmctld.log"),
                d_log = r("slurmd.log"),
            ),
        )
        .expect("slurm.conf");
        let mut cluster = Cluster { dir, conf, daemons: Vec::new() };
        let munge = root.join("munge");
        cluster.spawn(
            "munged",
            std::process::Command::new(program("munged")).arg("--foreground").arg("--force").args([
                format!("--socket={}", socket.display()),
                format!("--key-file={}", key.display()),
                format!("--pid-file={}", munge.join("munged.pid").display()),
                format!("--log-file={}", munge.join("munged.log").display()),
                format!("--seed-file={}", munge.join("munged.seed").display()),
            ]),
        );
        cluster.wait_for("munged's socket", Duration::from_secs(30), || socket.exists());
        let mut ctld = std::process::Command::new(program("slurmctld"));
        ctld.args(["-D", "-i"]);
        cluster.spawn("slurmctld", &mut ctld);
        let mut slurmd = std::process::Command::new(program("slurmd"));
        slurmd.args(["-D", "-N", &host]);
        cluster.spawn("slurmd", &mut slurmd);
        let sinfo = program("sinfo");
        cluster.wait_for("the node to be idle", Duration::from_secs(90), || {
            let out = cluster.slurm(&sinfo).args(["-h", "-o", "%T"]).output();
            out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle")
        });
        cluster
    }

    fn spawn(&mut self, name: &str, command: &mut std::process::Command) {
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.out"))).expect("daemon log");
        let err = log.try_clone().expect("daemon log");
        let child = command
            .env("SLURM_CONF", &self.conf)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.daemons.push((name.to_owned(), child));
    }

    /// A Slurm client command against this cluster.
    fn slurm(&self, program: &Path) -> std::process::Command {
        let mut command = std::process::Command::new(program);
        command.env("SLURM_CONF", &self.conf).stdin(Stdio::null());
        command
    }

    /// Runs a Slurm client command; fails the test with its output if it fails.
    fn run(&self, name: &str, args: &[&str]) -> String {
        let out = self.slurm(&program(name)).args(args).output().unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
        if !out.status.success() {
            self.fail(&format!(
                "`{name} {}` failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The array tasks of `job` still queued or running.
    fn queued(&self, job: &str) -> Vec<String> {
        let out = self.slurm(&program("squeue")).args(["-h", "-r", "-j", job, "-o", "%i %T"]).output();
        match out {
            Ok(out) => String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn wait_for(&self, what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
        let started = Instant::now();
        while !done() {
            if started.elapsed() > timeout {
                self.fail(&format!("timed out after {timeout:?} waiting for {what}"));
            }
            for (name, child) in &self.daemons {
                // A daemon that exited on its own (bad configuration) will never make it happen.
                if let Ok(Some(status)) = child.try_wait_ref() {
                    self.fail(&format!("{name} exited ({status}) while waiting for {what}"));
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Fails the test with the daemons' logs.
    fn fail(&self, what: &str) -> ! {
        let mut logs = String::new();
        for name in ["munged.out", "slurmctld.out", "slurmd.out", "slurmctld.log", "slurmd.log", "munge/munged.log"] {
            if let Ok(text) = std::fs::read_to_string(self.dir.path().join(name)) {
                let tail: Vec<&str> = text.lines().rev().take(25).collect();
                logs.push_str(&format!("--- {name} (last lines)\n"));
                for line in tail.into_iter().rev() {
                    logs.push_str(line);
                    logs.push('\n');
                }
            }
        }
        panic!("{what}\n{logs}");
    }
}

/// `Child::try_wait` needs `&mut`; the guard only has `&` while waiting.
trait TryWaitRef {
    fn try_wait_ref(&self) -> std::io::Result<Option<std::process::ExitStatus>>;
}

impl TryWaitRef for Child {
    fn try_wait_ref(&self) -> std::io::Result<Option<std::process::ExitStatus>> {
        // Without reaping: /proc/<pid>/stat's state is Z once it has exited.
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.id())).unwrap_or_default();
        let state = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()).unwrap_or("Z");
        Ok(if state == "Z" || state == "X" { Some(std::process::ExitStatus::default()) } else { None })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // No job of the test outlives it; then the daemons, by the pids this test started.
        let _ = self.slurm(&program("scancel")).args(["--full", "--user", "root"]).output();
        for (_, child) in self.daemons.iter_mut().rev() {
            let _ = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        }
        for (_, child) in self.daemons.iter_mut().rev() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn hostname() -> String {
    let out = std::process::Command::new("hostname").arg("-s").output().expect("hostname -s");
    let name = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(!name.is_empty(), "`hostname -s` printed nothing");
    name
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// Submits a `shards`-task array of a new run of the example with `plan`; the job and run ids.
fn submit(cluster: &Cluster, store: &Store, shards: &str, plan: &[&str]) -> (String, String) {
    let mut args = vec!["submit", "slurm", "social_deception", "--shards", shards];
    args.extend(plan);
    let out = Command::new(BIN)
        .args(&args)
        .arg("--store")
        .arg(store.path())
        .env("SLURM_CONF", &cluster.conf)
        .env("PATH", path_with_slurm())
        .timeout(Duration::from_secs(120))
        .run();
    out.assert_code(0);
    out.assert_stderr_contains("follow it with:");
    let job = out.stdout.trim().to_owned();
    out.check(!job.is_empty() && job.chars().all(|c| c.is_ascii_digit()), "stdout is the job id");
    let created = out.stderr.lines().find_map(|l| l.strip_prefix("created run ")).expect("the run it created");
    let run = created.split_whitespace().next().expect("run id").to_owned();
    out.assert_stderr_contains(&format!("status {run} --store"));
    (job, run)
}

/// PATH with the directories Slurm's programs are in.
fn path_with_slurm() -> std::ffi::OsString {
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect();
    dirs.extend(DIRS.iter().map(PathBuf::from));
    std::env::join_paths(dirs).expect("PATH")
}

fn status(store: &Store, run: &str) -> Value {
    let out = store.run(&["status", run, "--json"]);
    out.assert_code(0);
    out.json()
}

/// Waits until every task of `job` has left the queue; fails with the task logs otherwise.
fn wait_for_job(cluster: &Cluster, store: &Store, job: &str, run: &str) {
    let logs = store.run_dir(run).join("slurm");
    let started = Instant::now();
    while !cluster.queued(job).is_empty() {
        if started.elapsed() > Duration::from_secs(600) {
            let mut text = String::new();
            for entry in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
                text.push_str(&format!("--- {}\n", entry.path().display()));
                text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
            cluster.fail(&format!("job {job} still queued after 10 minutes: {:?}\n{text}", cluster.queued(job)));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_slurm_job_array_of_shards_records_what_one_process_records_and_a_requeued_task_finishes_its_shard() {
    let cluster = Cluster::start();

    // 1. Four shards as a job array; the merged report is the single-process run's.
    let plan = ["--replicates", "8", "--seed", "21"];
    let reference = Store::new(BIN);
    let mut args = vec!["run", "--json"];
    args.extend(plan);
    let expected = reference.run(&args);
    expected.assert_code(0);
    let expected = units_by_key(&expected.json());
    assert_eq!(expected.len(), 24);

    let store = Store::new(BIN);
    let (job, run) = submit(&cluster, &store, "4", &plan);
    wait_for_job(&cluster, &store, &job, &run);
    let seen = status(&store, &run);
    assert_eq!(seen["status"], "complete", "{seen:#}");
    assert_eq!(seen["shard_count"], 4, "{seen:#}");
    let report = store.run(&["report", &run, "--json"]);
    report.assert_code(0);
    assert_eq!(units_by_key(&report.json()), expected, "the job array's metrics differ from one process's");
    let sessions = std::fs::read_dir(store.run_dir(&run))
        .expect("run dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("session-"))
        .count();
    assert_eq!(sessions, 4, "one session per array task");

    // Resubmitting a task of a complete run (by run id, only task 2: `--array` on sbatch's command
    // line wins over the script's) runs nothing: shard 2/4 has nothing to do.
    let again = Command::new(BIN)
        .args(["submit", "slurm", &run, "--shards", "4", "--sbatch-arg=--array=2", "--store"])
        .arg(store.path())
        .env("SLURM_CONF", &cluster.conf)
        .env("PATH", path_with_slurm())
        .timeout(Duration::from_secs(120))
        .run();
    again.assert_code(0);
    let job2 = again.stdout.trim().to_owned();
    wait_for_job(&cluster, &store, &job2, &run);
    let log = std::fs::read_to_string(store.run_dir(&run).join("slurm").join(format!("{job2}_2.out")))
        .unwrap_or_else(|e| cluster.fail(&format!("no log of the resubmitted task {job2}_2: {e}")));
    assert!(log.contains(&format!("nothing to do: every unit of shard 2/4 of run {run} is done")), "{log}");
    assert!(records_per_unit(&store.run_dir(&run)).values().all(|n| *n == 1), "nothing ran again");

    // 2. Slow units; one task cancelled mid-run, then requeued: the run completes, and no unit
    // was run (recorded) twice.
    let slow = ["--replicates", "8", "--seed", "21", "--set", "think_ms=400"];
    let store = Store::new(BIN);
    let (job, run) = submit(&cluster, &store, "4", &slow);
    let task = format!("{job}_1");
    let started = Instant::now();
    loop {
        let seen = status(&store, &run);
        let shard = &seen["shards"][1];
        if shard["done"].as_u64() >= Some(1) && shard["live_writers"].as_array().is_some_and(|w| !w.is_empty()) {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            cluster.fail(&format!("task {task} never ran a unit: {seen:#}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster.run("scancel", &[&task]);
    let started = Instant::now();
    while cluster.queued(&task).iter().any(|line| !line.contains("PENDING")) {
        if started.elapsed() > Duration::from_secs(120) {
            cluster.fail(&format!("task {task} did not end after scancel: {:?}", cluster.queued(&task)));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let cancelled = status(&store, &run);
    assert_eq!(cancelled["shards"][1]["complete"], false, "scancel hit task {task} mid-run: {cancelled:#}");
    cluster.run("scontrol", &["requeue", &task]);
    // A requeued job waits a while before it is eligible again; the test need not.
    cluster.run("scontrol", &["update", &format!("JobId={task}"), "StartTime=now"]);
    wait_for_job(&cluster, &store, &job, &run);
    let seen = status(&store, &run);
    assert_eq!(seen["status"], "complete", "the requeued task finished its shard: {seen:#}");
    let report = store.run(&["report", &run, "--json"]);
    report.assert_code(0);
    assert_eq!(units_by_key(&report.json()), expected, "after scancel and requeue, the metrics are one process's");
    let counts = records_per_unit(&store.run_dir(&run));
    assert_eq!(counts.len(), 24, "{counts:?}");
    assert!(counts.values().all(|n| *n == 1), "no unit was run twice: {counts:?}");
    let log = std::fs::read_dir(store.run_dir(&run).join("slurm"))
        .expect("task logs")
        .flatten()
        .find(|e| e.file_name().to_string_lossy() == format!("{job}_1.out"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .unwrap_or_default();
    assert!(log.contains("interrupted: finishing the units in flight"), "the cancelled task stopped cleanly:\n{log}");
    assert!(log.matches("resuming shard 1/4").count() >= 2, "the requeued task resumed its shard:\n{log}");
}
