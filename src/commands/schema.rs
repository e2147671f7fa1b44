//! `sluice schema`: print, write or check the JSON Schemas.

use std::path::Path;

use super::{Error, Exit};
use crate::schema::{Kind, stale};

pub fn run(kind: Kind, out: Option<&Path>, check: bool) -> Result<Exit, Error> {
    if check {
        let dir = out.unwrap_or(Path::new("schemas"));
        let stale = stale(dir);
        if stale.is_empty() {
            println!("schemas in {} are up to date", dir.display());
            return Ok(Exit::Success);
        }
        eprintln!(
            "error: stale schema(s) in {}: {}\nhint: run `sluice schema --out {}` and commit the result",
            dir.display(),
            stale.join(", "),
            dir.display()
        );
        return Ok(Exit::Failure);
    }
    let Some(dir) = out else {
        print!("{}", kind.render());
        return Ok(Exit::Success);
    };
    let write_err = |path: &Path| {
        let path = path.display().to_string();
        move |source| Error::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    for k in Kind::ALL {
        let path = dir.join(k.file_name());
        std::fs::write(&path, k.render()).map_err(write_err(&path))?;
        println!("wrote {}", path.display());
    }
    Ok(Exit::Success)
}
