//! Verdicts on guest console logs of the rig.
//!
//! The guest init (`tests/guest/init`) prints each test program's KTAP
//! between `@@KTAP-BEGIN <name>@@` and `@@KTAP-END <name> rc=<status>@@`,
//! then the kernel log between `@@DMESG-BEGIN@@` and `@@DMESG-END@@`. This
//! crate reads such a log and decides: every test result counted, and every
//! way a run can go wrong without a failing test line (a missing plan, a
//! crash or hang mid-program, a kernel splat, a time-out) counted as a failure.

use std::fmt;

/// What one test program reported.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Section {
    /// `<group>/<program>`.
    pub name: String,
    /// The program's output, as printed.
    pub lines: Vec<String>,
    /// Exit status, `None` when the end marker never came.
    pub status: Option<i32>,
}

/// Counts and reasons for one guest run.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub passed: u32,
    pub failed: u32,
    pub skipped: u32,
    /// Why the run failed beyond failing test lines, one line each.
    pub problems: Vec<String>,
}

impl Verdict {
    fn problem(&mut self, what: String) {
        self.failed += 1;
        self.problems.push(what);
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)?;
        if self.skipped > 0 {
            write!(f, ", {} skipped", self.skipped)?;
        }
        Ok(())
    }
}

/// Kernel log lines that mean something went wrong, whatever the tests said.
const SPLATS: &[&str] = &[
    "Kernel panic",
    "Oops",
    "BUG:",
    "kernel BUG at",
    "WARNING:",
    "Call Trace:",
    "Unable to handle kernel",
    "UBSAN:",
    "KASAN:",
    "refcount_t:",
    "possible circular locking",
    "possible recursive locking",
    "inconsistent lock state",
    // kmemleak's scan summary and its reports (not its start-up lines).
    "suspected memory leak",
    "unreferenced object",
    "rcu_sched self-detected stall",
    "rcu: INFO:",
    "blocked for more than",
    // A region released that was never requested (or from another tree).
    "Trying to free nonexistent resource",
];

/// The splat a console line shows, if any.
pub fn splat(line: &str) -> Option<&'static str> {
    SPLATS.iter().copied().find(|s| line.contains(s))
}

/// Splits a console log into test sections.
pub fn sections(log: &str) -> Vec<Section> {
    let mut out = Vec::new();
    let mut cur: Option<Section> = None;
    for line in log.lines() {
        if let Some(name) = line
            .strip_prefix("@@KTAP-BEGIN ")
            .and_then(|r| r.strip_suffix("@@"))
        {
            if let Some(open) = cur.take() {
                out.push(open);
            }
            cur = Some(Section {
                name: name.to_string(),
                ..Default::default()
            });
        } else if let Some(rest) = line
            .strip_prefix("@@KTAP-END ")
            .and_then(|r| r.strip_suffix("@@"))
        {
            if let Some(mut open) = cur.take() {
                open.status = rest
                    .rsplit_once(" rc=")
                    .filter(|(name, _)| *name == open.name)
                    .and_then(|(_, rc)| rc.parse().ok());
                out.push(open);
            }
        } else if let Some(open) = cur.as_mut() {
            open.lines.push(line.to_string());
        }
    }
    out.extend(cur);
    out
}

/// One top-level KTAP result line: `(ok, skipped)`.
fn result(line: &str) -> Option<(bool, bool)> {
    let (ok, rest) = if let Some(r) = line.strip_prefix("not ok ") {
        (false, r)
    } else {
        (true, line.strip_prefix("ok ")?)
    };
    rest.split_whitespace().next()?.parse::<u32>().ok()?;
    let directive = rest
        .split_once(" # ")
        .map(|(_, d)| d.trim_start().to_ascii_uppercase());
    let skipped = directive.is_some_and(|d| d.starts_with("SKIP"));
    Some((ok, skipped))
}

/// Judges one section: its results, plan and exit status.
pub fn judge_section(s: &Section, v: &mut Verdict) {
    let mut plan = None;
    let mut results = 0;
    let mut failed = 0;
    for line in &s.lines {
        if let Some(n) = line.strip_prefix("1..") {
            plan = n
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u32>().ok());
        } else if let Some((ok, skipped)) = result(line) {
            results += 1;
            match (ok, skipped) {
                (_, true) => v.skipped += 1,
                (true, false) => v.passed += 1,
                (false, false) => {
                    v.failed += 1;
                    failed += 1;
                }
            }
        }
    }
    match plan {
        None => v.problem(format!("{}: no KTAP plan", s.name)),
        Some(n) if n != results => {
            v.problem(format!("{}: plan of {n} tests, {results} results", s.name))
        }
        Some(_) => {}
    }
    match s.status {
        None => v.problem(format!("{}: did not finish (crash or hang)", s.name)),
        Some(rc) if rc != 0 && failed == 0 => {
            v.problem(format!("{}: exit status {rc} with no failing test", s.name))
        }
        Some(_) => {}
    }
}

/// Judges a whole guest console log; `qemu_status` is QEMU's exit status
/// (124 for the rig's time-out).
pub fn judge(log: &str, qemu_status: i32) -> (Vec<Section>, Verdict) {
    let mut v = Verdict::default();
    let secs = sections(log);
    for s in &secs {
        judge_section(s, &mut v);
    }
    if secs.is_empty() {
        v.problem("no test program ran".to_string());
    }
    if qemu_status == 124 {
        v.problem("QEMU timed out".to_string());
    } else if qemu_status != 0 {
        v.problem(format!("QEMU exited with status {qemu_status}"));
    }
    if !log.lines().any(|l| l == "@@DMESG-END@@") {
        v.problem("the guest did not reach its end (no kernel log dump)".to_string());
    }
    if let Some((line, what)) = log.lines().find_map(|l| splat(l).map(|s| (l, s))) {
        v.problem(format!("kernel splat ({what}): {}", line.trim()));
    }
    (secs, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(body: &str) -> String {
        format!("OpenSBI\n[    0.1] boot\n{body}@@DMESG-BEGIN@@\n[ 0.2] x\n@@DMESG-END@@\n")
    }

    const PASSING: &str = "@@KTAP-BEGIN rig/rig_test@@\nTAP version 13\n1..3\n\
        # Starting 3 tests from 1 test cases.\n#  RUN  global.a ...\nok 1 global.a\n\
        ok 2 global.b # SKIP no device\nok 3 global.c\n# Totals: pass:2 fail:0\n\
        @@KTAP-END rig/rig_test rc=0@@\n";

    #[test]
    fn counts_results_and_skips() {
        let (secs, v) = judge(&log(PASSING), 0);
        assert_eq!(secs.len(), 1);
        assert_eq!(secs[0].status, Some(0));
        assert_eq!((v.passed, v.failed, v.skipped), (2, 0, 1));
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        assert_eq!(v.to_string(), "2 passed, 0 failed, 1 skipped");
    }

    #[test]
    fn failing_test_counts_once() {
        let body = PASSING
            .replace("ok 3 global.c", "not ok 3 global.c")
            .replace("rc=0", "rc=1");
        let (_, v) = judge(&log(&body), 0);
        assert_eq!((v.passed, v.failed), (1, 1));
        assert!(v.problems.is_empty());
    }

    #[test]
    fn missing_plan_fails() {
        let (_, v) = judge(&log(&PASSING.replace("1..3\n", "")), 0);
        assert_eq!(v.failed, 1);
        assert!(v.problems[0].contains("no KTAP plan"));
    }

    #[test]
    fn short_run_fails_against_plan() {
        let (_, v) = judge(&log(&PASSING.replace("ok 3 global.c\n", "")), 0);
        assert!(v
            .problems
            .iter()
            .any(|p| p.contains("plan of 3 tests, 2 results")));
    }

    #[test]
    fn crash_mid_program_fails() {
        let cut = &PASSING[..PASSING.find("ok 3").unwrap()];
        let text = format!(
            "{cut}[ 1.0] Unable to handle kernel paging request\nKernel panic - not syncing\n"
        );
        let (secs, v) = judge(&text, 0);
        assert_eq!(secs[0].status, None);
        assert!(v.problems.iter().any(|p| p.contains("did not finish")));
        assert!(v.problems.iter().any(|p| p.contains("no kernel log dump")));
        assert!(v.problems.iter().any(|p| p.contains("kernel splat")));
    }

    #[test]
    fn a_resource_freed_that_was_never_requested_fails() {
        let line = "[ 0.9] resource: Trying to free nonexistent resource <0x0000000010000000-0x0000000010000fff>";
        assert_eq!(splat(line), Some("Trying to free nonexistent resource"));
    }

    #[test]
    fn kmemleak_reports_fail_but_its_start_up_does_not() {
        assert_eq!(
            splat(
                "[ 0.1] kmemleak: Kernel memory leak detector initialized (mem pool available: 15)"
            ),
            None
        );
        assert_eq!(
            splat("[ 9.1] kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)"),
            Some("suspected memory leak")
        );
        assert_eq!(
            splat("unreferenced object 0xff60000002a5e400 (size 64):"),
            Some("unreferenced object")
        );
    }

    #[test]
    fn warning_in_dmesg_fails_a_passing_run() {
        let text = log(PASSING).replace("[ 0.2] x", "[ 0.2] WARNING: CPU: 0 PID: 1 at foo.c:1");
        let (_, v) = judge(&text, 0);
        assert_eq!(v.passed, 2);
        assert_eq!(v.failed, 1);
        assert!(v.problems[0].contains("WARNING:"));
    }

    #[test]
    fn nonzero_exit_without_failure_fails() {
        let (_, v) = judge(&log(&PASSING.replace("rc=0", "rc=139")), 0);
        assert!(v.problems.iter().any(|p| p.contains("exit status 139")));
    }

    #[test]
    fn timeout_and_empty_logs_fail() {
        let (_, v) = judge("OpenSBI\n", 124);
        assert!(v.problems.iter().any(|p| p == "QEMU timed out"));
        assert!(v.problems.iter().any(|p| p == "no test program ran"));
    }

    #[test]
    fn nested_and_diagnostic_lines_are_not_results() {
        let body = PASSING.replace(
            "ok 1 global.a",
            "    ok 1 sub.x\n# ok 9 not a result\nok 1 global.a",
        );
        let (_, v) = judge(&log(&body), 0);
        assert_eq!((v.passed, v.failed, v.skipped), (2, 0, 1));
    }

    #[test]
    fn mismatched_end_marker_is_unfinished() {
        let body = PASSING.replace("@@KTAP-END rig/rig_test rc=0@@", "@@KTAP-END other rc=0@@");
        let (secs, _) = judge(&log(&body), 0);
        assert_eq!(secs[0].status, None);
    }
}
