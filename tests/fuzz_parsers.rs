//! The parsers of hostile input, fuzzed on stable Rust for a bounded time on every `cargo test`
//! (the `fuzz/` cargo-fuzz targets run the same entry points under libFuzzer, longer, by hand):
//! matrix files, scenario files and results.jsonl, seeded with the bundled files and mutated.
//! A panic fails the test and saves the input under `target/fuzz-crashes/`; inputs saved in
//! `fuzz/regressions/TARGET/` run first on every run, so a crash once found stays fixed.
//!
//! `CACHEGATE_FUZZ_SECONDS` (default 5 per target) sets the time, `CACHEGATE_FUZZ_SEED` the
//! seed (default fixed, so a failure reproduces).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &str, ext: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(repo().join(dir))
        .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    out.sort();
    out
}

/// Tokens that matter to the grammars, spliced in at random.
const TOKENS: &[&[u8]] = &[
    b"[",
    b"]",
    b"[[",
    b"]]",
    b"{",
    b"}",
    b"=",
    b"\"",
    b"'",
    b"\"\"\"",
    b"\n",
    b",",
    b".",
    b"#",
    b"\\u0000",
    b"\\",
    b"-1",
    b"0",
    b"4294967296",
    b"18446744073709551616",
    b"1e308",
    b"nan",
    b"inf",
    b"true",
    b"null",
    b"\"1s\"",
    b"\"0s\"",
    b"\"99999999999h\"",
    b"@",
    b"redis@",
    b"/",
    b"[[include]]\n",
    b"[[expect]]\n",
    b"[[axes.variant]]\n",
    b"[target]\n",
    b"[gates]\n",
    b"\xff",
    b"\xc3",
    b"\x00",
    b":",
    b"{\"schema\":",
    b"\"ops\":[",
    b"\"histogram\":\"",
];

fn mutate(rng: &mut SmallRng, seeds: &[Vec<u8>], input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let len = out.len();
        let at = if len == 0 {
            0
        } else {
            rng.random_range(0..len)
        };
        match rng.random_range(0..6) {
            0 if len > 0 => out[at] ^= 1 << rng.random_range(0..8),
            1 => out.insert(at, rng.random()),
            2 if len > 0 => {
                let end = (at + rng.random_range(1..=16)).min(len);
                out.drain(at..end);
            }
            3 => {
                let t = TOKENS[rng.random_range(0..TOKENS.len())];
                out.splice(at..at, t.iter().copied());
            }
            4 if len > 0 => {
                let end = (at + rng.random_range(1..=64)).min(len);
                let piece = out[at..end].to_vec();
                out.splice(at..at, piece);
            }
            _ => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                if !other.is_empty() {
                    let from = rng.random_range(0..other.len());
                    let end = (from + rng.random_range(1..=128)).min(other.len());
                    out.splice(at..at, other[from..end].iter().copied());
                }
            }
        }
    }
    out.truncate(1 << 16);
    out
}

/// Run `target` on the regressions, the seeds, then mutations until the time is up.
fn fuzz(name: &str, seeds: Vec<Vec<u8>>, target: fn(&[u8])) {
    assert!(!seeds.is_empty(), "{name}: no seed files");
    let seconds: u64 = std::env::var("CACHEGATE_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let seed: u64 = std::env::var("CACHEGATE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00c0_ffee);
    let mut rng = SmallRng::seed_from_u64(seed);
    let regressions = files(&format!("fuzz/regressions/{name}"), ".in");
    let run = |input: &[u8]| {
        // Quiet: the default hook would print every caught panic's message.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let outcome = std::panic::catch_unwind(|| target(input));
        std::panic::set_hook(hook);
        if outcome.is_err() {
            let dir = repo().join("target/fuzz-crashes");
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("{name}-{seed}-{}.in", input.len()));
            std::fs::write(&path, input).unwrap();
            // Once more, with the panic message shown.
            let _ = std::panic::catch_unwind(|| target(input));
            panic!(
                "{name}: the parser panicked on {} (copy it to fuzz/regressions/{name}/ once fixed)",
                path.display()
            );
        }
    };
    for input in regressions.iter().chain(&seeds) {
        run(input);
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut n = 0u64;
    let mut current = seeds[0].clone();
    while Instant::now() < deadline {
        // Mostly from a seed, sometimes from the last mutant (deeper changes).
        if rng.random_bool(0.7) {
            current = seeds[rng.random_range(0..seeds.len())].clone();
        }
        current = mutate(&mut rng, &seeds, &current);
        run(&current);
        n += 1;
    }
    eprintln!(
        "{name}: {} regressions, {} seeds, {n} mutated inputs in {seconds} s, no panic",
        regressions.len(),
        seeds.len()
    );
    assert!(n > 0 || seconds == 0);
}

#[test]
fn matrix_files() {
    let mut seeds = files("matrices", ".toml");
    seeds.extend(files("tests/fixtures/matrices", ".toml"));
    fuzz("matrix", seeds, cachegate::fuzz_entry::matrix);
}

#[test]
fn scenario_files() {
    fuzz(
        "scenario",
        files("scenarios", ".toml"),
        cachegate::fuzz_entry::scenario,
    );
}

#[test]
fn results_files() {
    let mut seeds = vec![std::fs::read(repo().join("tests/fixtures/run/results.jsonl")).unwrap()];
    seeds.extend(files("tests/fixtures/baseline", ".jsonl"));
    // Lines one at a time too: mutations then reach deeper into one result.
    let lines: Vec<Vec<u8>> = seeds[0]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| [l, b"\n"].concat())
        .collect();
    seeds.extend(lines);
    fuzz("results", seeds, cachegate::fuzz_entry::results);
}

#[test]
fn a_file_that_never_ends_is_refused_not_read_into_memory() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.toml");
    std::fs::write(
        &m,
        "[matrix]\nname = \"t\"\n[axes]\nserver = [\"redis@7.4\"]\n[scenario]\nuse = \"/dev/zero\"\n",
    )
    .unwrap();
    let err = cachegate::config::load_matrix(Path::new(&m)).err().unwrap();
    assert!(err.to_string().contains("larger than 16 MiB"), "{err}");
}
