//! Links among the project's files, one rule for every tool that reads or writes them: a link
//! that stays inside the project is followed; one that leads out of it is refused (exit 2)
//! before anything is read or written. A migration that is a link to `/etc/shadow` must not be
//! read (nor its text shown in an error), and `dbmigrate dump --file` must not overwrite what a
//! link points at elsewhere. The project is the directory holding the nearest `dbtools.toml`
//! above the file, or the file's own directory when there is none.

use crate::exit::{Error, Result};
use std::path::{Path, PathBuf};

/// The project a path belongs to: the nearest ancestor directory of `dir` (itself included)
/// holding `dbtools.toml`, else `dir`; canonical. The ancestors are those of the path as
/// written (made absolute, not resolved): a `migrations/` that is itself a link to another
/// tree belongs to the project it sits in, so what it leads to is judged against that.
pub fn project_root(dir: &Path) -> Result<PathBuf> {
    let written = std::path::absolute(dir)
        .map_err(|e| Error::BadInput(format!("cannot read {}: {e}", dir.display())))?;
    let root = written
        .ancestors()
        .find(|candidate| candidate.join(crate::config::CONFIG_FILE).is_file())
        .unwrap_or(&written);
    std::fs::canonicalize(root)
        .map_err(|e| Error::BadInput(format!("cannot read {}: {e}", root.display())))
}

/// Refuses `path` when it (or a directory on its way) is a link that leads out of `root`; a
/// path that does not exist yet is judged by its directory.
pub fn check_inside(path: &Path, root: &Path) -> Result<()> {
    let resolved = match std::fs::canonicalize(path) {
        Ok(resolved) => resolved,
        Err(_) if std::fs::symlink_metadata(path).is_ok() => {
            return Err(Error::BadInput(format!(
                "{} is a link to nothing (its target is missing): fix or remove the link",
                path.display()
            )))
        }
        // Not there yet: judged by its nearest ancestor that is (a link among the directories
        // still to be created would be followed by their creation).
        Err(_) => match path
            .ancestors()
            .skip(1)
            .find(|ancestor| ancestor.exists())
            .map(std::fs::canonicalize)
        {
            Some(Ok(ancestor)) => ancestor,
            _ => return Ok(()),
        },
    };
    if resolved.starts_with(root) {
        return Ok(());
    }
    Err(Error::BadInput(format!(
        "{} leads to {}, outside the project ({}): links are followed only inside it — copy the file in, or remove the link",
        path.display(),
        resolved.display(),
        root.display()
    )))
}

/// Opens `resolved` (a path [`check_inside`] judged, made canonical) refusing a link in its
/// place now: a link swapped in after the check is not followed, so what was checked is what
/// is read.
pub fn open_resolved(resolved: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    #[cfg(windows)]
    {
        // Opened as usual, then the path Windows says the handle has must be the one checked:
        // a link or junction swapped in since, at any depth, leads elsewhere and is refused.
        let file = options.open(resolved)?;
        if crate::windows::final_path(&file)? != resolved {
            return Err(std::io::Error::other(format!(
                "{} became a link after it was checked",
                resolved.display()
            )));
        }
        return Ok(file);
    }
    #[allow(unreachable_code)]
    options.open(resolved)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn links_inside_are_followed_and_links_out_refused() {
        let base = std::env::temp_dir().join(format!("dbtools-links-{}", std::process::id()));
        let project = base.join("project");
        let outside = base.join("outside");
        std::fs::create_dir_all(project.join("migrations")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(project.join("dbtools.toml"), "").unwrap();
        std::fs::write(project.join("shared.sql"), "select 1;").unwrap();
        std::fs::write(outside.join("secret.sql"), "select 2;").unwrap();
        let migrations = project.join("migrations");
        std::os::unix::fs::symlink(project.join("shared.sql"), migrations.join("1_in.sql"))
            .unwrap();
        std::os::unix::fs::symlink(outside.join("secret.sql"), migrations.join("2_out.sql"))
            .unwrap();
        std::os::unix::fs::symlink(outside.join("gone.sql"), migrations.join("3_dangling.sql"))
            .unwrap();
        let root = project_root(&migrations).unwrap();
        assert_eq!(root, std::fs::canonicalize(&project).unwrap());
        assert!(check_inside(&migrations.join("1_in.sql"), &root).is_ok());
        let out = check_inside(&migrations.join("2_out.sql"), &root).unwrap_err();
        assert!(
            out.message().contains("outside the project"),
            "{}",
            out.message()
        );
        assert!(!out.message().contains("select 2"));
        let dangling = check_inside(&migrations.join("3_dangling.sql"), &root).unwrap_err();
        assert!(
            dangling.message().contains("link to nothing"),
            "{}",
            dangling.message()
        );
        assert!(check_inside(&migrations.join("4_new.sql"), &root).is_ok());
        std::fs::remove_dir_all(base).unwrap();
    }
}
