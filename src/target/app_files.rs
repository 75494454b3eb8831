//! The bundled reference app (`targets/django/`), compiled into the binary so that cachegate runs
//! from anywhere, and written out to the cache on first use.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

const FILES: &[(&str, &str)] = &[
    ("manage.py", include_str!("../../targets/django/manage.py")),
    (
        "cgapp/__init__.py",
        include_str!("../../targets/django/cgapp/__init__.py"),
    ),
    (
        "cgapp/apps.py",
        include_str!("../../targets/django/cgapp/apps.py"),
    ),
    (
        "cgapp/exceptions.py",
        include_str!("../../targets/django/cgapp/exceptions.py"),
    ),
    (
        "cgapp/settings.py",
        include_str!("../../targets/django/cgapp/settings.py"),
    ),
    (
        "cgapp/urls.py",
        include_str!("../../targets/django/cgapp/urls.py"),
    ),
    (
        "cgapp/views.py",
        include_str!("../../targets/django/cgapp/views.py"),
    ),
    (
        "cgapp/wsgi.py",
        include_str!("../../targets/django/cgapp/wsgi.py"),
    ),
];

/// A short hash of the app's sources: a changed app gets a new folder.
pub fn fingerprint() -> String {
    fingerprint_of(FILES)
}

fn fingerprint_of(files: &[(&str, &str)]) -> String {
    let mut h = Sha256::new();
    for (path, text) in files {
        h.update(path.as_bytes());
        h.update(text.as_bytes());
    }
    h.finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Write the app under `CACHE/targets/django-HASH/` (once) and return that folder.
pub fn install(cache_dir: &Path) -> std::io::Result<PathBuf> {
    install_files(cache_dir, "django", FILES)
}

/// Write `files` under `CACHE/targets/NAME-HASH/` (once) and return that folder.
pub fn install_files(
    cache_dir: &Path,
    name: &str,
    files: &[(&str, &str)],
) -> std::io::Result<PathBuf> {
    let dir = cache_dir
        .join("targets")
        .join(format!("{name}-{}", fingerprint_of(files)));
    if dir.join("READY").exists() {
        return Ok(dir);
    }
    for (path, text) in files {
        let dest = dir.join(path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Write-then-rename: a concurrent reader never sees half a file.
        let tmp = dest.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &dest)?;
    }
    std::fs::write(dir.join("READY"), "")?;
    Ok(dir)
}
