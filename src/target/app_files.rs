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
    let mut h = Sha256::new();
    for (path, text) in FILES {
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
    let dir = cache_dir
        .join("targets")
        .join(format!("django-{}", fingerprint()));
    if dir.join("READY").exists() {
        return Ok(dir);
    }
    std::fs::create_dir_all(dir.join("cgapp"))?;
    for (path, text) in FILES {
        let dest = dir.join(path);
        // Write-then-rename: a concurrent reader never sees half a file.
        let tmp = dest.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &dest)?;
    }
    std::fs::write(dir.join("READY"), "")?;
    Ok(dir)
}
