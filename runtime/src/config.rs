//! Settings from a TOML file under the command line, and the checks every
//! binary makes of its secrets.

/// Refuses an empty or blank secret: set but empty (say, from an unset
/// variable in a template), it would turn its check off.
pub fn no_empty_secrets(secrets: &[(&str, &Option<String>)]) -> anyhow::Result<()> {
    for (flag, secret) in secrets {
        if secret.as_deref().is_some_and(|s| s.trim().is_empty()) {
            anyhow::bail!("{flag} is empty: give a secret, or leave the flag out");
        }
    }
    Ok(())
}

/// The process's arguments with a TOML config file's settings put in front
/// of the command line's: keys mirror the long flags (`max_connections =
/// 5000` is `--max-connections 5000`, a list repeats the flag), so the
/// command line wins over the file, and the file over the environment.
/// The file is `--config FILE`, or the `config_env` variable.
pub fn args_with_config_file(config_env: &str) -> anyhow::Result<Vec<std::ffi::OsString>> {
    args_with_config_file_from(std::env::args_os().collect(), config_env)
}

/// [`args_with_config_file`] for a command line given: `args[0]` the
/// program, the rest its arguments.
pub fn args_with_config_file_from(
    mut args: Vec<std::ffi::OsString>,
    config_env: &str,
) -> anyhow::Result<Vec<std::ffi::OsString>> {
    let mut path = std::env::var_os(config_env).map(std::path::PathBuf::from);
    if let Some(i) = args.iter().position(|a| a == "--config") {
        let value = args.get(i + 1).ok_or_else(|| anyhow::anyhow!("--config needs a file"))?;
        path = Some(value.into());
        args.drain(i..i + 2);
    } else if let Some(i) = args.iter().position(|a| a.to_str().is_some_and(|a| a.starts_with("--config="))) {
        path = Some(args.remove(i).to_string_lossy()["--config=".len()..].into());
    }
    let Some(path) = path else { return Ok(args) };
    let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
    let from_file = config_flags(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
    args.splice(1..1, from_file.into_iter().map(Into::into));
    Ok(args)
}

/// `key = value` lines as `--key=value` flags.
fn config_flags(text: &str) -> Result<Vec<String>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    table_flags(table)
}

/// One file for several parts: each of `names` is a table of its part's
/// settings (`[router]`, `[gateway]`), its flags in that order; a table
/// missing is none, another one is refused.
pub fn config_tables(text: &str, names: &[&str]) -> Result<Vec<Vec<String>>, String> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    if let Some(other) = table.keys().find(|key| !names.contains(&key.as_str())) {
        return Err(format!("[{other}]: the tables are {}", names.join(", ")));
    }
    let mut part = |name: &str| match table.remove(name) {
        None => Ok(Vec::new()),
        Some(toml::Value::Table(part)) => table_flags(part),
        Some(_) => Err(format!("{name} is a table: [{name}]")),
    };
    names.iter().map(|name| part(name)).collect()
}

fn table_flags(table: toml::Table) -> Result<Vec<String>, String> {
    let mut flags = Vec::new();
    for (key, value) in table {
        let flag = format!("--{}", key.replace('_', "-"));
        let values = match value {
            toml::Value::Array(items) => items,
            single => vec![single],
        };
        for value in values {
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Float(n) => n.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => return Err(format!("{key}: unsupported value {}", other.type_str())),
            };
            flags.push(format!("{flag}={text}"));
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys_become_flags_and_lists_repeat() {
        let flags = config_flags("listen = \"127.0.0.1:1\"\nmax_connections = 5\nconnect_event = false\nbackend = [\"a:1\", \"b:2,weight=3\"]\n").unwrap();
        assert_eq!(
            flags,
            [
                "--backend=a:1",
                "--backend=b:2,weight=3",
                "--connect-event=false",
                "--listen=127.0.0.1:1",
                "--max-connections=5"
            ]
        );
        assert!(config_flags("nested = { a = 1 }").is_err());
        assert!(config_flags("not toml").is_err());
    }

    #[test]
    fn one_file_gives_each_part_its_table() {
        let text = "[router]\nhttp = \"127.0.0.1:2\"\n[gateway]\nbackend = [\"a:1\"]\n";
        let tables = config_tables(text, &["router", "gateway"]).unwrap();
        assert_eq!(tables, [vec!["--http=127.0.0.1:2".to_owned()], vec!["--backend=a:1".to_owned()]]);
        assert_eq!(config_tables("[router]\n", &["router", "gateway"]).unwrap(), [Vec::<String>::new(), Vec::new()]);
        assert!(config_tables("[routr]\nhttp = 1\n", &["router", "gateway"]).is_err(), "a misspelt table");
        assert!(config_tables("router = 1\n", &["router", "gateway"]).is_err());
    }
}
