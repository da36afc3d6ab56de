//! Running a program from a test: bounded in time, its output collected.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `command` to completion, writing `input` (if any) to its standard input; kills it and
/// fails the test past `deadline`. A program that cannot start fails naming the script that
/// installs the tools the tests run.
pub fn run_bounded(mut command: Command, input: Option<Vec<u8>>, deadline: Duration) -> Output {
    let what = format!("{command:?}");
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut child = command
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "starting {what}: {e} (install the test tools with `bash scripts/deps.sh --test`)"
            )
        });
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).map(|_| bytes)
        })
    };
    if let (Some(input), Some(mut pipe)) = (input, child.stdin.take()) {
        // A child that stops reading early closes the pipe: the error is then irrelevant.
        std::thread::spawn(move || std::io::Write::write_all(&mut pipe, &input));
    }
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let end = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap().unwrap(),
        stderr: stderr.join().unwrap().unwrap(),
    }
}
