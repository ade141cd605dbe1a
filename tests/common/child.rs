//! The harness of the tests that run their own test binary as a child process: the child is an
//! ignored test of the same binary, told what to do by environment variables; it prints lines for
//! the parent (`ACK <n>` and the like) with [`say`]; the parent reads them as they come, collects
//! the child's stderr, and kills the child (SIGKILL) when it wants, or when it panics itself.

use std::fmt::Debug;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

/// The arguments that make a test binary run just its ignored test `test`, printing as it goes.
pub fn test_args(test: &str) -> [&str; 5] {
    [test, "--exact", "--ignored", "--nocapture", "--test-threads=1"]
}

/// This test binary, set to run its ignored test `test`.
pub fn self_command(test: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(test_args(test));
    command
}

/// In the child: prints a line for the parent and flushes it at once.
pub fn say(line: &str) {
    let mut out = std::io::stdout();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// The number after `tag` in a line of the child, if the line holds `tag` (libtest may print
/// `test <name> ... ` on the same line first).
pub fn number_after<T: FromStr>(line: &str, tag: &str) -> Option<T>
where
    T::Err: Debug,
{
    let at = line.find(tag)?;
    Some(line[at + tag.len()..].trim().parse().unwrap())
}

/// A running child with its stdout and stderr piped here. Its stdout lines arrive on `lines` as
/// it prints them; its stderr is collected whole. Dropping it kills the child, so a parent that
/// panics leaves no child behind.
pub struct ChildProcess {
    child: Child,
    pub lines: Receiver<String>,
    stdout_reader: Option<JoinHandle<()>>,
    stderr_reader: Option<JoinHandle<String>>,
    stderr: String,
}

impl ChildProcess {
    /// Spawns `command` (its stdout and stderr piped here).
    pub fn spawn(mut command: Command) -> ChildProcess {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawning the child");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = mpsc::channel();
        let stdout_reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr_reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
            text
        });
        ChildProcess {
            child,
            lines,
            stdout_reader: Some(stdout_reader),
            stderr_reader: Some(stderr_reader),
            stderr: String::new(),
        }
    }

    /// The next line within `timeout`, `None` if none came; panics if the child exited (its
    /// stdout closed) before printing one.
    pub fn recv(&mut self, timeout: Duration) -> Option<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.wait();
                self.exited_on_its_own(status)
            }
        }
    }

    /// Fails the test: the child exited before the parent meant it to.
    pub fn exited_on_its_own(&mut self, status: ExitStatus) -> ! {
        panic!("the child exited on its own ({status}): {}", self.stderr())
    }

    /// The child's exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().unwrap()
    }

    /// Kills the child (on Unix, `kill` sends SIGKILL) and waits for it.
    pub fn kill(&mut self) -> ExitStatus {
        self.child.kill().unwrap();
        self.wait()
    }

    /// Once the child is dead: the lines it printed that `lines` has not yet given.
    pub fn remaining_lines(&mut self) -> Vec<String> {
        if let Some(reader) = self.stdout_reader.take() {
            reader.join().unwrap();
        }
        self.lines.try_iter().collect()
    }

    /// Once the child is dead: all it wrote to stderr.
    pub fn stderr(&mut self) -> String {
        if let Some(reader) = self.stderr_reader.take() {
            self.stderr = reader.join().unwrap();
        }
        self.stderr.clone()
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
