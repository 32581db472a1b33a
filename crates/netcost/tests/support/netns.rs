//! Running code and commands inside a named network namespace.
//!
//! Sockets belong to the network namespace of the thread that creates them, so every helper here
//! runs its work on a fresh thread that first joins `/var/run/netns/<name>` with `setns(2)`. A
//! socket created there keeps working from any other thread afterwards.

use std::fs::File;
use std::io::Write;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;

use nix::sched::{CloneFlags, setns};

/// Runs `f` on a fresh thread inside network namespace `ns` and returns its result.
///
/// A panic in `f` is resumed on the calling thread.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                enter(ns);
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Starts `f` on a fresh thread inside network namespace `ns`.
pub fn spawn_in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    let ns = ns.to_owned();
    std::thread::Builder::new()
        .name(format!("in-{ns}"))
        .spawn(move || {
            enter(&ns);
            f()
        })
        .expect("spawn a thread")
}

/// Joins a thread, resuming its panic on the caller.
pub fn join<T>(handle: JoinHandle<T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn enter(ns: &str) {
    let path = format!("/var/run/netns/{ns}");
    let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    setns(&file, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns into {ns}: {e}"));
}

/// Runs a command to completion and returns its stdout; panics with its stderr if it fails.
pub fn run(program: &str, args: &[&str]) -> String {
    run_with_stdin(program, args, None)
}

/// Like [`run`], inside network namespace `ns` (through `ip netns exec`).
pub fn run_in(ns: &str, program: &str, args: &[&str]) -> String {
    let mut full = vec!["netns", "exec", ns, program];
    full.extend_from_slice(args);
    run("ip", &full)
}

/// Like [`run`], feeding `stdin` to the command.
pub fn run_with_stdin(program: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(input.as_bytes())
            .unwrap_or_else(|e| panic!("write stdin of {program}: {e}"));
    }
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait for {program}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        panic!(
            "`{program} {}` failed ({}):\n{}{stdout}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    stdout
}

/// Output of a diagnostic command, or why it could not run; never panics.
pub fn try_run_in(ns: &str, program: &str, args: &[&str]) -> String {
    match Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args)
        .output()
    {
        Ok(out) => format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => format!("cannot run {program} in {ns}: {e}"),
    }
}
