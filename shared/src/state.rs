//! The project-local state dir (`.dbtools/` beside `dbtools.toml` by default): local instances,
//! the local secret store and generated pgpass files. Anything secret is written 0600 in 0700
//! directories, atomically (write a temp file, then rename), so a crash never leaves half a secret.

use crate::exit::{Error, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    pub root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    pub fn secrets_dir(&self) -> PathBuf {
        self.root.join("secrets")
    }

    /// Secrets fetched from AWS, kept a few minutes so a pipeline asks once (0700, files 0600).
    pub(crate) fn secret_cache_dir(&self) -> PathBuf {
        self.root.join("cache").join("secrets")
    }

    /// Where `dbconnect psql` writes the startup file that puts the env in psql's prompt.
    pub fn psql_dir(&self) -> PathBuf {
        self.root.join("cache").join("psql")
    }

    pub fn local_dir(&self) -> PathBuf {
        self.root.join("local")
    }

    pub fn instance_dir(&self, id: &str) -> PathBuf {
        self.local_dir().join(id)
    }

    pub fn instance_record(&self, id: &str) -> PathBuf {
        self.instance_dir(id).join("instance.json")
    }

    pub fn pgpass_file(&self, env: &str) -> PathBuf {
        self.root.join("pgpass").join(format!("{env}.pgpass"))
    }

    /// Creates a directory (and parents) readable by others, e.g. the state root, which the
    /// `postgres` user must be able to traverse to reach its data dir.
    /// A directory that already exists keeps its mode: it may be the user's own (a state dir
    /// pointed at `/tmp` must keep its sticky bit).
    pub fn ensure_public_dir(&self, dir: &Path) -> Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(dir).map_err(|e| unwritable(dir, &e))?;
        set_mode(dir, 0o755)
    }

    /// Serializes whatever changes the local instances and their records on this state dir
    /// (`rdsprov` runs, `dbguard stamp` recording a stamp): two at once must not race.
    pub fn lock_local(&self) -> Result<fs::File> {
        self.ensure_public_dir(&self.local_dir())?;
        let path = self.local_dir().join(".lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::BadInput(format!("cannot open {}: {e}", path.display())))?;
        file.lock()
            .map_err(|e| Error::Failed(format!("cannot lock {}: {e}", path.display())))?;
        Ok(file)
    }

    /// Creates a 0700 directory (and the state root, 0755, above it).
    pub fn ensure_private_dir(&self, dir: &Path) -> Result<()> {
        self.ensure_public_dir(&self.root)?;
        fs::create_dir_all(dir).map_err(|e| unwritable(dir, &e))?;
        set_mode(dir, 0o700)
    }
}

fn unwritable(path: &Path, error: &std::io::Error) -> Error {
    Error::BadInput(format!(
        "cannot write state dir {}: {error}; make it writable or point DBTOOLS_STATE_DIR elsewhere",
        path.display()
    ))
}

#[cfg(unix)]
pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| unwritable(path, &e))
}

/// On Windows a mode that gives group and others nothing (0600, 0700) becomes an access list
/// for the current user alone ([`crate::windows::restrict_to_current_user`]); other modes
/// leave the inherited list as it is.
#[cfg(windows)]
pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    if mode & 0o077 == 0 {
        crate::windows::restrict_to_current_user(path).map_err(|e| unwritable(path, &e))?;
    }
    Ok(())
}

/// The access list (SDDL) a private file or directory gets on Windows: one entry, full control
/// for the user `sid`, nothing inherited from above (`P`); a directory's entry is inherited by
/// what is created in it (`OICI`).
#[cfg_attr(not(windows), allow(dead_code))]
pub(crate) fn private_sddl(sid: &str, is_dir: bool) -> String {
    let inherit = if is_dir { "OICI" } else { "" };
    format!("D:P(A;{inherit};FA;;;{sid})")
}

/// Who may open `path`, as the system says: the mode in octal on Unix (`600`), the access list
/// as SDDL on Windows (`D:P(A;;FA;;;S-1-5-…)`). For the tests that read a secret file's
/// protection back.
pub fn describe_access(path: &Path) -> Result<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::metadata(path).map_err(|e| unwritable(path, &e))?;
        Ok(format!("{:o}", meta.permissions().mode() & 0o777))
    }
    #[cfg(windows)]
    {
        crate::windows::access_list(path).map_err(|e| unwritable(path, &e))
    }
}

/// Writes `bytes` to `path` with mode 0600, atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with_mode(path, bytes, 0o600)
}

/// Writes a non-secret file (instance records, certificates) atomically, mode 0644.
pub fn write_public(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with_mode(path, bytes, 0o644)
}

fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| unwritable(dir, &e))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    // Windows checks access when a file is opened: no one else may open the new file (share
    // mode 0) until it is closed, by then with its access list, before its first byte.
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        options.share_mode(0);
    }
    let _ = fs::remove_file(&temp);
    let result = options
        .open(&temp)
        .and_then(|mut file| {
            // On Windows the access list goes on before the first byte (a rename keeps it).
            #[cfg(windows)]
            if mode & 0o077 == 0 {
                crate::windows::restrict_to_current_user(&temp)?;
            }
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|_| fs::rename(&temp, path));
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(unwritable(path, &e));
    }
    set_mode(path, mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_access_list_names_one_user_and_inherits_nothing() {
        let sid = "S-1-5-21-1-2-3-1001";
        assert_eq!(private_sddl(sid, false), "D:P(A;;FA;;;S-1-5-21-1-2-3-1001)");
        assert_eq!(
            private_sddl(sid, true),
            "D:P(A;OICI;FA;;;S-1-5-21-1-2-3-1001)"
        );
    }

    #[test]
    #[cfg(unix)]
    fn private_files_are_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("dbtools-state-{}", std::process::id()));
        let state = StateDir::new(&dir);
        state.ensure_private_dir(&state.secrets_dir()).unwrap();
        let file = state.secrets_dir().join("x.json");
        write_private(&file, b"{}").unwrap();
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(state.secrets_dir())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
