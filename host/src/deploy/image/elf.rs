//! What a dynamically linked binary needs beside it to start in an empty
//! root filesystem: its program interpreter (the loader, `PT_INTERP`) and
//! the shared libraries it links (`DT_NEEDED`, and theirs in turn).
//!
//! Each library is found among the files this process has mapped
//! (`/proc/self/maps`), matched by `DT_SONAME`: the binary put in the image
//! is the running one, so the mapped files are exactly what the loader chose
//! for it, without guessing the loader's search path or asking `ldd`. In the
//! image each library keeps the path it was mapped from, a directory the
//! same distribution's loader searches without `/etc/ld.so.cache` (the image
//! has none); one elsewhere (a directory only `ld.so.conf` named) is listed
//! in [`Runtime::extra_library_dirs`] for `LD_LIBRARY_PATH`.

use anyhow::{Context, Result, bail};
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, FileKind, ReadCache, elf};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};

/// A file of the host to place in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeFile {
    /// Its absolute path in the image.
    pub image_path: String,
    /// Where it is read from.
    pub source: PathBuf,
}

/// The loader and libraries a binary needs.
#[derive(Debug, Clone, Default)]
pub struct Runtime {
    /// The loader at the binary's `PT_INTERP` path; `None` for a static binary.
    pub loader: Option<RuntimeFile>,
    /// The shared libraries, sorted by image path.
    pub libraries: Vec<RuntimeFile>,
    /// Directories of libraries that the loader does not search by default.
    pub extra_library_dirs: Vec<String>,
}

/// The dynamic-linking facts of one ELF file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Linking {
    interpreter: Option<String>,
    soname: Option<String>,
    needed: Vec<String>,
}

/// The loader and libraries `binary` needs, which must be the running
/// executable (its libraries are looked up among this process's mappings).
pub fn runtime_of(binary: &Path) -> Result<Runtime> {
    let linking = read_linking(binary)?;
    let Some(interpreter) = linking.interpreter.clone() else {
        return Ok(Runtime::default());
    };
    let loader_source = std::fs::canonicalize(&interpreter)
        .with_context(|| format!("finding the loader `{interpreter}` of {}", binary.display()))?;
    let loader_soname = read_linking(&loader_source)?.soname;
    let mapped = mapped_libraries(binary, &loader_source)?;
    let mut libraries = BTreeMap::new();
    let mut queue: VecDeque<String> = linking.needed.into();
    let mut seen = BTreeSet::new();
    while let Some(name) = queue.pop_front() {
        if !seen.insert(name.clone()) || is_loader(&name, &interpreter, loader_soname.as_deref()) {
            continue;
        }
        let source = mapped.get(&name).with_context(|| {
            format!(
                "{} needs `{name}`, which this process has not loaded: cannot tell which file it is",
                binary.display()
            )
        })?;
        queue.extend(read_linking(source)?.needed);
        let image_path = path_text(source)?;
        libraries.insert(
            image_path.clone(),
            RuntimeFile {
                image_path,
                source: source.clone(),
            },
        );
    }
    let extra_library_dirs = libraries
        .keys()
        .filter_map(|path| parent_dir(path))
        .filter(|dir| !is_default_library_dir(dir))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    Ok(Runtime {
        loader: Some(RuntimeFile {
            image_path: interpreter,
            source: loader_source,
        }),
        libraries: libraries.into_values().collect(),
        extra_library_dirs,
    })
}

/// Whether `needed` names the loader itself (glibc's libraries list it;
/// it is already in the image at the `PT_INTERP` path).
fn is_loader(needed: &str, interpreter: &str, loader_soname: Option<&str>) -> bool {
    Some(needed) == loader_soname || Path::new(interpreter).file_name() == Some(needed.as_ref())
}

/// Reads the interpreter, soname and needed libraries of the ELF at `path`.
fn read_linking(path: &Path) -> Result<Linking> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let cache = ReadCache::new(file);
    let kind = FileKind::parse(&cache).with_context(|| format!("reading {}", path.display()))?;
    match kind {
        FileKind::Elf64 => linking::<elf::FileHeader64<Endianness>>(&cache),
        FileKind::Elf32 => linking::<elf::FileHeader32<Endianness>>(&cache),
        other => bail!("{} is not an ELF file ({other:?})", path.display()),
    }
    .with_context(|| format!("reading the ELF headers of {}", path.display()))
}

fn linking<Elf: FileHeader<Endian = Endianness>>(data: &ReadCache<File>) -> Result<Linking> {
    let header = Elf::parse(data)?;
    let endian = header.endian()?;
    let mut result = Linking::default();
    for segment in header.program_headers(endian, data)? {
        if let Some(interpreter) = segment.interpreter(endian, data)? {
            result.interpreter = Some(utf8(interpreter)?);
        }
    }
    let sections = header.sections(endian, data)?;
    let table = sections.dynamic_table(endian, data)?;
    for entry in table.iter() {
        let tag = entry.tag;
        if tag == elf::DT_NEEDED || tag == elf::DT_SONAME {
            let name = utf8(table.string(entry)?)?;
            if tag == elf::DT_NEEDED {
                result.needed.push(name);
            } else {
                result.soname = Some(name);
            }
        }
    }
    Ok(result)
}

/// The ELF files (other than `binary` and the loader) this process has
/// mapped, by soname (or file name when they have none).
fn mapped_libraries(binary: &Path, loader: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let maps = std::fs::read_to_string("/proc/self/maps")
        .context("reading /proc/self/maps (`amimono image` runs on Linux only)")?;
    let binary = std::fs::canonicalize(binary).unwrap_or_else(|_| binary.to_path_buf());
    let mut libraries = BTreeMap::new();
    for path in mapped_paths(&maps) {
        if path == binary || path == loader {
            continue;
        }
        // Mapped files that are not ELF objects (locale archives, a
        // bundle) are not libraries.
        let Ok(linking) = read_linking(&path) else {
            continue;
        };
        let name = match linking.soname {
            Some(soname) => soname,
            None => match path.file_name() {
                Some(name) => name.to_string_lossy().into_owned(),
                None => continue,
            },
        };
        libraries.entry(name).or_insert(path);
    }
    Ok(libraries)
}

/// The distinct absolute paths of files in `/proc/self/maps` text.
fn mapped_paths(maps: &str) -> BTreeSet<PathBuf> {
    maps.lines()
        // address perms offset dev inode path (the path may hold spaces)
        .filter_map(|line| line.splitn(6, ' ').nth(5))
        .map(str::trim_start)
        .filter(|path| path.starts_with('/') && !path.ends_with(" (deleted)"))
        .map(PathBuf::from)
        .collect()
}

fn utf8(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).context("a name in the ELF headers is not UTF-8")
}

fn path_text(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_string)
        .with_context(|| format!("library path {} is not UTF-8", path.display()))
}

fn parent_dir(path: &str) -> Option<String> {
    Path::new(path)
        .parent()
        .and_then(Path::to_str)
        .map(str::to_string)
}

/// Directories glibc's loader searches without `/etc/ld.so.cache` on the
/// usual distributions: `/lib`, `/usr/lib`, `/lib64`, `/usr/lib64` (Fedora,
/// SUSE) and the multiarch ones below them (`/usr/lib/x86_64-linux-gnu`:
/// Debian, Ubuntu).
fn is_default_library_dir(dir: &str) -> bool {
    const ROOTS: [&str; 4] = ["/lib", "/usr/lib", "/lib64", "/usr/lib64"];
    if ROOTS.contains(&dir) {
        return true;
    }
    let path = Path::new(dir);
    let multiarch = path
        .file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.contains("-linux-"));
    multiarch
        && path
            .parent()
            .and_then(Path::to_str)
            .is_some_and(|p| ROOTS.contains(&p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_give_absolute_paths_once() {
        let maps = "\
55d0c0000000-55d0c0001000 r--p 00000000 fd:01 123  /usr/bin/amimono
7f0000000000-7f0000001000 r--p 00000000 fd:01 456                        /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000001000-7f0000002000 r-xp 00001000 fd:01 456                        /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000003000-7f0000004000 rw-p 00000000 00:00 0 
7ffd00000000-7ffd00001000 r-xp 00000000 00:00 0                          [vdso]
7f0000005000-7f0000006000 r--p 00000000 fd:01 789                        /tmp/a b.so
7f0000007000-7f0000008000 r--p 00000000 fd:01 790                        /tmp/old.so (deleted)
";
        let paths: Vec<_> = mapped_paths(maps).into_iter().collect();
        assert_eq!(
            paths,
            [
                PathBuf::from("/tmp/a b.so"),
                PathBuf::from("/usr/bin/amimono"),
                PathBuf::from("/usr/lib/x86_64-linux-gnu/libc.so.6"),
            ]
        );
    }

    #[test]
    fn default_library_dirs() {
        for dir in [
            "/lib",
            "/usr/lib64",
            "/usr/lib/x86_64-linux-gnu",
            "/lib/aarch64-linux-gnu",
        ] {
            assert!(is_default_library_dir(dir), "{dir}");
        }
        for dir in [
            "/opt/gcc/lib",
            "/usr/local/lib",
            "/usr/lib/x86_64-linux-gnu/tls",
        ] {
            assert!(!is_default_library_dir(dir), "{dir}");
        }
    }

    /// The test binary is glibc-linked like `amimono`: its loader and libc
    /// are found, at paths the loader searches.
    #[test]
    fn the_running_test_binary_needs_its_loader_and_libc() {
        let exe = std::env::current_exe().unwrap();
        let runtime = runtime_of(&exe).unwrap();
        let loader = runtime.loader.clone().unwrap();
        assert!(loader.image_path.starts_with('/'), "{loader:?}");
        assert!(loader.source.is_file(), "{loader:?}");
        let libc = runtime
            .libraries
            .iter()
            .find(|l| l.image_path.ends_with("/libc.so.6"))
            .unwrap_or_else(|| panic!("no libc in {:?}", runtime.libraries));
        assert!(libc.source.is_file());
        assert!(
            runtime
                .libraries
                .iter()
                .all(|l| l.source != loader.source && !l.image_path.contains("ld-linux")),
            "the loader is placed once, at its PT_INTERP path: {runtime:?}"
        );
        assert!(runtime.extra_library_dirs.is_empty(), "{runtime:?}");
    }
}
