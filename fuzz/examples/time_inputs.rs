//! Runs inputs through a harness (no instrumentation) and lists the slowest: for finding what
//! makes a target slow. `cargo run --release --manifest-path fuzz/Cargo.toml --example
//! time_inputs -- TARGET DIR_OR_FILE...`.

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().unwrap();
    let run: fn(&[u8]) = match target.as_str() {
        "log_scan" => mtrdb_fuzz::log_scan::run,
        "page" => mtrdb_fuzz::page::run,
        "open_garbage" => mtrdb_fuzz::open_garbage::run,
        _ => mtrdb_fuzz::crash_ops::run,
    };
    let mut times = Vec::new();
    for path in args {
        for entry in std::fs::read_dir(&path)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_else(|_| vec![std::path::PathBuf::from(&path)])
        {
            let data = std::fs::read(&entry).unwrap();
            let start = std::time::Instant::now();
            run(&data);
            times.push((start.elapsed(), entry, data.first().copied()));
        }
    }
    times.sort();
    let total: std::time::Duration = times.iter().map(|t| t.0).sum();
    println!("{} inputs, total {:?}", times.len(), total);
    for t in times.iter().rev().take(8) {
        println!("{:?} {} mode {:?}", t.0, t.1.display(), t.2);
    }
}
