//! `ktap report LABEL LOG QEMU-STATUS TOTALS`: prints the KTAP of each test
//! program in a guest console log and its verdict, and appends
//! `passed failed skipped label` to TOTALS.
//!
//! `ktap total TOTALS`: prints the closing `N passed, M failed[, K skipped]`
//! line over every row of TOTALS; exit status 1 when anything failed.

use std::{fs, io::Write, process::ExitCode};

use ktap::{judge, Verdict};

fn usage() -> ExitCode {
    eprintln!("usage: ktap report LABEL LOG QEMU-STATUS TOTALS | ktap total TOTALS");
    ExitCode::from(2)
}

fn report(label: &str, log: &str, status: &str, totals: &str) -> Result<bool, String> {
    let text = fs::read(log).map_err(|e| format!("{log}: {e}"))?;
    let text = String::from_utf8_lossy(&text);
    let status = status
        .parse()
        .map_err(|_| format!("bad QEMU status '{status}'"))?;
    let (sections, v) = judge(&text, status);
    for s in &sections {
        println!("# {label}: {}", s.name);
        for line in &s.lines {
            println!("{line}");
        }
    }
    for p in &v.problems {
        println!("# {label}: FAIL: {p}");
    }
    println!("# {label}: {v} (console log: {log})");
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(totals)
        .map_err(|e| format!("{totals}: {e}"))?;
    writeln!(f, "{} {} {} {label}", v.passed, v.failed, v.skipped).map_err(|e| e.to_string())?;
    Ok(v.failed == 0)
}

fn total(totals: &str) -> Result<bool, String> {
    let text = fs::read_to_string(totals).map_err(|e| format!("{totals}: {e}"))?;
    let mut v = Verdict::default();
    for row in text.lines() {
        let n: Vec<u32> = row
            .split_whitespace()
            .take(3)
            .filter_map(|x| x.parse().ok())
            .collect();
        let [p, f, s] = n[..] else {
            return Err(format!("{totals}: bad row '{row}'"));
        };
        v.passed += p;
        v.failed += f;
        v.skipped += s;
        if f > 0 {
            println!("# failed: {}", row.splitn(4, ' ').nth(3).unwrap_or("?"));
        }
    }
    if v.passed + v.failed == 0 {
        println!("# no test ran");
        v.failed = 1;
    }
    println!("{v}");
    Ok(v.failed == 0)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let res = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["report", label, log, status, totals] => report(label, log, status, totals),
        ["total", totals] => total(totals),
        _ => return usage(),
    };
    match res {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("ktap: {e}");
            ExitCode::from(2)
        }
    }
}
