//! `sigproxy keygen`: a new Ed25519 pair as `ID.key` (base64 seed, mode 0600) and `ID.pub`
//! (base64 public key), plus the `keys:` entry to paste. It never overwrites a file.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::keys;

#[derive(clap::Args, Debug)]
pub struct KeygenArgs {
    /// Key id (the `keyid` clients sign with); also the file name stem.
    #[arg(long, value_name = "ID")]
    pub key_id: String,
    /// Client id the key belongs to [default: the key id].
    #[arg(long, value_name = "C")]
    pub client_id: Option<String>,
    /// Directory to write ID.key and ID.pub into (must exist).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
}

/// What went wrong, split by exit code: 2 = the request cannot be done as asked, 1 = it failed.
#[derive(Debug)]
enum Failure {
    Usage(String),
    Io(String),
}

#[derive(Debug)]
struct Written {
    key_path: PathBuf,
    pub_path: PathBuf,
    yaml: String,
}

pub fn run(args: &KeygenArgs) -> ExitCode {
    let written = match write_pair(args) {
        Ok(w) => w,
        Err(Failure::Usage(msg)) => {
            eprintln!("sigproxy keygen: {msg}");
            return ExitCode::from(2);
        }
        Err(Failure::Io(msg)) => {
            eprintln!("sigproxy keygen: {msg}");
            return ExitCode::from(1);
        }
    };
    eprintln!(
        "wrote {} (private key, mode 0600) and {}; add this to the policy:",
        written.key_path.display(),
        written.pub_path.display()
    );
    // stdout carries only the YAML, so it can be appended to a key file directly.
    match std::io::stdout().lock().write_all(written.yaml.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sigproxy keygen: cannot write to stdout: {e}");
            ExitCode::from(1)
        }
    }
}

/// The key id becomes a file name, so it is held to a conservative character set.
fn check_key_id(id: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "-_.:@".contains(c);
    if id.is_empty() || id.len() > 128 {
        return Err(format!(
            "--key-id must be 1 to 128 characters (got {})",
            id.len()
        ));
    }
    if id.starts_with('.') || !id.chars().all(ok_char) {
        return Err(format!(
            "--key-id {id:?} must use only A-Z a-z 0-9 - _ . : @ and not start with '.'"
        ));
    }
    Ok(())
}

fn check_client_id(client_id: &str) -> Result<(), String> {
    if client_id.is_empty() || client_id.chars().any(char::is_control) {
        return Err(format!(
            "--client-id {client_id:?} must be non-empty and contain no control characters"
        ));
    }
    Ok(())
}

/// A JSON string literal is also a valid YAML double-quoted scalar; quoting keeps ids such as
/// `true` or `123` strings.
fn yaml_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

fn create_new(path: &Path, private: bool) -> Result<File, Failure> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        // Created with 0600, never chmod-ed afterwards: no window in which others can read it.
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    opts.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Failure::Usage(format!(
            "{} already exists; not overwriting it",
            path.display()
        )),
        _ => Failure::Io(format!("cannot create {}: {e}", path.display())),
    })
}

fn write_and_sync(mut file: File, path: &Path, text: &str) -> Result<(), Failure> {
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Failure::Io(format!("cannot write {}: {e}", path.display())))
}

fn write_pair(args: &KeygenArgs) -> Result<Written, Failure> {
    check_key_id(&args.key_id).map_err(Failure::Usage)?;
    let client_id = args.client_id.as_deref().unwrap_or(&args.key_id);
    check_client_id(client_id).map_err(Failure::Usage)?;
    if !args.out.is_dir() {
        return Err(Failure::Usage(format!(
            "--out {} is not an existing directory",
            args.out.display()
        )));
    }
    let key = keys::generate().map_err(|e| Failure::Io(e.to_string()))?;
    let public = keys::public_base64(&key.verifying_key());

    let key_path = args.out.join(format!("{}.key", args.key_id));
    let pub_path = args.out.join(format!("{}.pub", args.key_id));
    // Claim both names before writing either, so a conflict leaves nothing behind.
    let key_file = create_new(&key_path, true)?;
    let pub_file = match create_new(&pub_path, false) {
        Ok(f) => f,
        Err(e) => {
            drop(key_file);
            let _ = fs::remove_file(&key_path); // empty, created just now by us
            return Err(e);
        }
    };
    write_and_sync(
        key_file,
        &key_path,
        &format!("{}\n", keys::private_base64(&key)),
    )?;
    write_and_sync(pub_file, &pub_path, &format!("{public}\n"))?;

    let yaml = format!(
        "keys:\n  - key_id: {}\n    client_id: {}\n    public_key: {}\n    status: active\n",
        yaml_str(&args.key_id),
        yaml_str(client_id),
        yaml_str(&public)
    );
    Ok(Written {
        key_path,
        pub_path,
        yaml,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &Path, id: &str, client: Option<&str>) -> KeygenArgs {
        KeygenArgs {
            key_id: id.into(),
            client_id: client.map(Into::into),
            out: dir.to_path_buf(),
        }
    }

    #[test]
    fn writes_a_matching_pair_and_the_yaml_entry() {
        let dir = tempfile::tempdir().unwrap();
        let w = write_pair(&args(dir.path(), "web-frontend-v1", Some("web-frontend"))).unwrap();
        assert_eq!(w.key_path, dir.path().join("web-frontend-v1.key"));
        let private = keys::parse_private_key(&fs::read_to_string(&w.key_path).unwrap()).unwrap();
        let public = keys::parse_public_key(&fs::read_to_string(&w.pub_path).unwrap()).unwrap();
        assert_eq!(private.verifying_key(), public);
        assert_eq!(
            w.yaml,
            format!(
                "keys:\n  - key_id: \"web-frontend-v1\"\n    client_id: \"web-frontend\"\n    public_key: \"{}\"\n    status: active\n",
                keys::public_base64(&public)
            )
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&w.key_path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn yaml_entry_parses_with_tricky_ids() {
        use saphyr::LoadableYamlNode as _;
        let dir = tempfile::tempdir().unwrap();
        let w = write_pair(&args(dir.path(), "true", Some("a \"b\" #c: d\\"))).unwrap();
        let docs = saphyr::Yaml::load_from_str(&w.yaml).unwrap();
        let entry = &docs[0]["keys"][0];
        assert_eq!(entry["key_id"].as_str(), Some("true"));
        assert_eq!(entry["client_id"].as_str(), Some("a \"b\" #c: d\\"));
        assert_eq!(entry["status"].as_str(), Some("active"));
        let public = keys::parse_public_key(entry["public_key"].as_str().unwrap()).unwrap();
        assert_eq!(
            keys::parse_public_key(&fs::read_to_string(&w.pub_path).unwrap()).unwrap(),
            public
        );
    }

    #[test]
    fn client_id_defaults_to_key_id() {
        let dir = tempfile::tempdir().unwrap();
        let w = write_pair(&args(dir.path(), "k1", None)).unwrap();
        assert!(w.yaml.contains("client_id: \"k1\""), "{}", w.yaml);
    }

    #[test]
    fn never_overwrites_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_pair(&args(dir.path(), "k1", None)).unwrap();
        let before = fs::read_to_string(&first.key_path).unwrap();
        match write_pair(&args(dir.path(), "k1", None)) {
            Err(Failure::Usage(m)) => assert!(m.contains("already exists"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(fs::read_to_string(&first.key_path).unwrap(), before);

        // only the .pub exists: the .key created for the attempt is removed again
        fs::write(dir.path().join("k2.pub"), "x").unwrap();
        assert!(matches!(
            write_pair(&args(dir.path(), "k2", None)),
            Err(Failure::Usage(_))
        ));
        assert!(!dir.path().join("k2.key").exists());
        assert_eq!(run(&args(dir.path(), "k1", None)), ExitCode::from(2));
    }

    #[test]
    fn bad_ids_and_dirs_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        for id in [
            "",
            "../evil",
            "a/b",
            ".hidden",
            "with space",
            &"x".repeat(129),
        ] {
            match write_pair(&args(dir.path(), id, None)) {
                Err(Failure::Usage(m)) => assert!(m.contains("--key-id"), "{m}"),
                other => panic!("{id:?}: {other:?}"),
            }
        }
        assert!(matches!(
            write_pair(&args(dir.path(), "k", Some("a\nb"))),
            Err(Failure::Usage(_))
        ));
        assert!(matches!(
            write_pair(&args(&dir.path().join("missing"), "k", None)),
            Err(Failure::Usage(_))
        ));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn clap_parses_the_spec_flags() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            keygen: KeygenArgs,
        }
        let cli = Cli::try_parse_from(["keygen", "--key-id", "k9"]).unwrap();
        assert_eq!(cli.keygen.key_id, "k9");
        assert_eq!(cli.keygen.client_id, None);
        assert_eq!(cli.keygen.out, PathBuf::from("."));
        assert!(Cli::try_parse_from(["keygen"]).is_err());
    }
}
