//! Parsing an `EncryptionConfiguration` (YAML or JSON) into rules. Every error names the
//! path of the field it is about, as `resources[0].providers[1].aesgcm.keys[0].secret`.

use base64::Engine;
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::resource::Resource;
use super::{aesgcm, identity, secretbox, Error, Key, NewCipher, Result, Rule};

/// The only `apiVersion` accepted.
pub const API_VERSION: &str = "apiserver.config.k8s.io/v1";
/// The only `kind` accepted.
pub const KIND: &str = "EncryptionConfiguration";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct File {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    resources: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    providers: Vec<ProviderSpec>,
}

/// One item of `providers`: exactly one field is set. The providers rkube does not have are
/// named so that their error says so rather than "unknown field".
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderSpec {
    aesgcm: Option<KeysSpec>,
    secretbox: Option<KeysSpec>,
    identity: Option<Empty>,
    aescbc: Option<IgnoredAny>,
    kms: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysSpec {
    #[serde(default)]
    keys: Vec<KeySpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySpec {
    #[serde(default)]
    name: String,
    #[serde(default)]
    secret: String,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

const REQUIRED: &str = "Required value";

/// The rules of the configuration in `text`, in order.
pub(super) fn parse(text: &str) -> Result<Vec<Rule>> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    let file: File = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "(document)".into()
        } else {
            path
        };
        invalid(field, e.into_inner().to_string())
    })?;
    for (field, have, want) in [
        ("apiVersion", &file.api_version, API_VERSION),
        ("kind", &file.kind, KIND),
    ] {
        if have.is_empty() {
            return Err(invalid(field, format!("{REQUIRED}: must be {want:?}")));
        }
        if have != want {
            return Err(invalid(field, format!("must be {want:?}, got {have:?}")));
        }
    }
    if file.resources.is_empty() {
        return Err(invalid("resources", REQUIRED));
    }
    let mut seen: Vec<(Resource, String, usize)> = Vec::new();
    let mut rules = Vec::with_capacity(file.resources.len());
    for (i, entry) in file.resources.iter().enumerate() {
        let path = format!("resources[{i}]");
        let resources = resources(&path, i, &entry.resources, &mut seen)?;
        if entry.providers.is_empty() {
            return Err(invalid(format!("{path}.providers"), REQUIRED));
        }
        let mut keys: Vec<Key> = Vec::new();
        let mut writes_plaintext = false;
        for (j, p) in entry.providers.iter().enumerate() {
            let Some(Keys {
                provider: name,
                keys: named,
            }) = provider(&format!("{path}.providers[{j}]"), p)?
            else {
                writes_plaintext |= j == 0;
                continue;
            };
            for (name_path, key) in named {
                if keys.iter().any(|k| k.prefix == key.prefix) {
                    return Err(invalid(
                        name_path,
                        format!("Duplicate value: another {name} key of {path} has this name"),
                    ));
                }
                keys.push(key);
            }
        }
        rules.push(Rule {
            resources,
            keys,
            writes_plaintext,
        });
    }
    Ok(rules)
}

/// An encrypting provider's keys, each with the path of its `name` field.
struct Keys {
    provider: &'static str,
    keys: Vec<(String, Key)>,
}

/// The keys of the provider at `path`; None for `identity`.
fn provider(path: &str, p: &ProviderSpec) -> Result<Option<Keys>> {
    let set = [
        p.aesgcm.is_some(),
        p.secretbox.is_some(),
        p.identity.is_some(),
        p.aescbc.is_some(),
        p.kms.is_some(),
    ];
    let reason = format!(
        "must set exactly one of {}, {} or {}",
        aesgcm::NAME,
        secretbox::NAME,
        identity::NAME
    );
    match set.iter().filter(|s| **s).count() {
        0 => return Err(invalid(path, reason)),
        1 => {}
        _ => return Err(invalid(path, format!("{reason}, not several"))),
    }
    let unsupported = "is not supported by rkube; use aesgcm or secretbox";
    let (name, spec, cipher): (_, _, NewCipher) = match p {
        ProviderSpec {
            aesgcm: Some(s), ..
        } => (aesgcm::NAME, s, aesgcm::cipher),
        ProviderSpec {
            secretbox: Some(s), ..
        } => (secretbox::NAME, s, secretbox::cipher),
        ProviderSpec {
            aescbc: Some(_), ..
        } => return Err(invalid(format!("{path}.aescbc"), unsupported)),
        ProviderSpec { kms: Some(_), .. } => {
            return Err(invalid(format!("{path}.kms"), unsupported))
        }
        _ => return Ok(None),
    };
    let keys = provider_keys(&format!("{path}.{name}"), name, spec, cipher)?;
    Ok(Some(Keys {
        provider: name,
        keys,
    }))
}

/// The entries of `resources[i].resources`, refusing any that an earlier entry (in this or
/// an earlier list) already covers, or that covers one of the same list: such a
/// configuration would not do what it says.
fn resources(
    path: &str,
    i: usize,
    names: &[String],
    seen: &mut Vec<(Resource, String, usize)>,
) -> Result<Vec<Resource>> {
    if names.is_empty() {
        return Err(invalid(format!("{path}.resources"), REQUIRED));
    }
    let mut out = Vec::with_capacity(names.len());
    for (j, name) in names.iter().enumerate() {
        let field = format!("{path}.resources[{j}]");
        let r = Resource::parse(name).map_err(|reason| invalid(&field, reason))?;
        let earlier = seen
            .iter()
            .find(|(s, _, si)| s.covers(&r) || (*si == i && r.covers(s)));
        if let Some((s, at, _)) = earlier {
            return Err(invalid(
                &field,
                format!("{r} overlaps {at} ({s}); each resource may be named once, and wildcards only where nothing earlier names what they cover"),
            ));
        }
        seen.push((r.clone(), field, i));
        out.push(r);
    }
    Ok(out)
}

/// The keys of one provider, with the path of each key's name for later messages.
fn provider_keys(
    path: &str,
    provider: &str,
    spec: &KeysSpec,
    cipher: NewCipher,
) -> Result<Vec<(String, Key)>> {
    if spec.keys.is_empty() {
        return Err(invalid(format!("{path}.keys"), REQUIRED));
    }
    let mut out = Vec::with_capacity(spec.keys.len());
    for (k, key) in spec.keys.iter().enumerate() {
        let path = format!("{path}.keys[{k}]");
        if key.name.is_empty() {
            return Err(invalid(format!("{path}.name"), REQUIRED));
        }
        if key.name.contains(':') {
            return Err(invalid(
                format!("{path}.name"),
                "must not contain ':', which ends the key name in stored values",
            ));
        }
        if key.secret.is_empty() {
            return Err(invalid(format!("{path}.secret"), REQUIRED));
        }
        let secret = base64::engine::general_purpose::STANDARD
            .decode(key.secret.trim())
            .map_err(|e| invalid(format!("{path}.secret"), format!("must be base64: {e}")))?;
        let cipher = cipher(&secret).map_err(|reason| invalid(format!("{path}.secret"), reason))?;
        let prefix = format!(
            "{}{provider}:v1:{}:",
            String::from_utf8_lossy(identity::ENCRYPTED_PREFIX),
            key.name
        );
        out.push((
            format!("{path}.name"),
            Key {
                prefix: prefix.into_bytes().into_boxed_slice(),
                cipher,
            },
        ));
    }
    Ok(out)
}
