//! `rdsprov tenant add NAME --env ENV --spec FILE`: the tenant SQL (`crate::tenancy`) on an env's
//! RDS instance, as its master user (password from Secrets Manager), over `verify-full` TLS with
//! the RDS CA bundle the user downloaded. The tenant's password goes to Secrets Manager
//! (`rdsprov/<id>/tenant/<name>`) before the role gets it; `--iam` grants `rds_iam`.

use crate::aws::databases::MasterAccess;
use crate::aws::spec::InstanceSpec;
use crate::aws::{code, describe, Aws};
use crate::tenancy::{self, DatabaseSpec};
use dbtools::contract::{DatabaseRecord, SecretRef};
use dbtools::names::quote_ident;
use dbtools::{pg, Result};
use std::path::Path;

pub(crate) fn tenant_secret_prefix(spec: &InstanceSpec) -> String {
    format!("rdsprov/{}/tenant/", spec.id)
}

pub(crate) fn tenant_secret_name(spec: &InstanceSpec, tenant: &DatabaseSpec) -> String {
    format!("{}{}", tenant_secret_prefix(spec), tenant.name)
}

/// The tenants of an instance, from their secrets (name, env tag, ARN): the registry's view
/// without a connection to the database.
pub(crate) fn list(aws: &Aws, spec: &InstanceSpec) -> Result<Vec<DatabaseRecord>> {
    let prefix = tenant_secret_prefix(spec);
    let mut tenants = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = aws
            .block_on(
                aws.secrets
                    .list_secrets()
                    .filters(
                        aws_sdk_secretsmanager::types::Filter::builder()
                            .key(aws_sdk_secretsmanager::types::FilterNameStringType::Name)
                            .values(&prefix)
                            .build(),
                    )
                    .set_next_token(next.take())
                    .send(),
            )
            .map_err(|e| describe("listing tenant secrets", e))?;
        for entry in page.secret_list() {
            let Some(name) = entry.name().and_then(|n| n.strip_prefix(&prefix)) else {
                continue;
            };
            let env = entry
                .tags()
                .iter()
                .find(|t| t.key() == Some("env"))
                .and_then(|t| t.value())
                .unwrap_or(&spec.env);
            tenants.push(DatabaseRecord {
                name: name.to_string(),
                owner: name.to_string(),
                env: env.to_string(),
                secret: SecretRef {
                    source: dbtools::contract::SecretSource::AwsSm,
                    reference: entry.arn().unwrap_or_default().to_string(),
                },
                stamp: None,
            });
        }
        next = page.next_token().map(str::to_string);
        if next.is_none() {
            break;
        }
    }
    tenants.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tenants)
}

/// Adds (or converges) the tenant; returns what changed and the tenant's database record.
pub(crate) fn add(
    aws: &Aws,
    spec: &InstanceSpec,
    tenant: &DatabaseSpec,
    iam: bool,
    sslrootcert: Option<&Path>,
) -> Result<(Vec<String>, DatabaseRecord)> {
    let access = MasterAccess::of(aws, spec, spec, sslrootcert, "tenant add on RDS")?;
    let (host, port) = (access.conn("postgres").host, access.conn("postgres").port);
    let mut client = access.connect("postgres")?;

    let secret_name = tenant_secret_name(spec, tenant);
    let existing = match aws.block_on(aws.secrets.describe_secret().secret_id(&secret_name).send())
    {
        Ok(answer) => answer.arn().map(str::to_string),
        Err(e) if code(&e) == Some("ResourceNotFoundException") => None,
        Err(e) => return Err(describe("reading the tenant's secret", e)),
    };
    let mut secret_arn = existing.clone();
    let mut changes = tenancy::ensure_role_and_database(
        &mut client,
        tenant,
        existing.is_some(),
        &mut |password| {
            let value = serde_json::json!({
                "username": tenant.owner, "password": password, "engine": "postgres",
                "host": host, "port": port, "dbname": tenant.name,
            })
            .to_string();
            let arn = match &existing {
                Some(arn) => {
                    aws.block_on(
                        aws.secrets
                            .put_secret_value()
                            .secret_id(arn)
                            .secret_string(value)
                            .send(),
                    )
                    .map_err(|e| describe("storing the tenant's password", e))?;
                    arn.clone()
                }
                None => aws
                    .block_on(
                        aws.secrets
                            .create_secret()
                            .name(&secret_name)
                            .description(format!("rdsprov: tenant {} on {}", tenant.name, spec.id))
                            .tags(
                                aws_sdk_secretsmanager::types::Tag::builder()
                                    .key("env")
                                    .value(&tenant.env)
                                    .build(),
                            )
                            .secret_string(value)
                            .send(),
                    )
                    .map_err(|e| describe("storing the tenant's password", e))?
                    .arn()
                    .unwrap_or_default()
                    .to_string(),
            };
            secret_arn = Some(arn);
            Ok(())
        },
    )?;
    if iam {
        let granted = tenancy::exists(
            &mut client,
            "SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = 'rds_iam' AND r.rolname = $1",
            &tenant.owner,
        )?;
        if !granted {
            client
                .batch_execute(&format!("GRANT rds_iam TO {}", quote_ident(&tenant.owner)))
                .map_err(|e| pg::statement_error("GRANT rds_iam", &e))?;
            changes.push(format!(
                "granted rds_iam to {} (IAM auth tokens)",
                tenant.owner
            ));
        }
    }
    let mut in_database = access.connect(&tenant.name)?;
    let (change, stamp) = tenancy::ensure_stamp(&mut in_database, tenant, &spec.id)?;
    changes.extend(change);
    // The instance's owner records the stamp outside the database, where a restored copy of
    // it does not follow.
    if let Some(recorded) = dbtools::owner::recorded(&stamp) {
        crate::aws::stamps::record(aws, &spec.id, &tenant.name, &recorded)?;
    }
    Ok((
        changes,
        DatabaseRecord {
            name: tenant.name.clone(),
            owner: tenant.owner.clone(),
            env: tenant.env.clone(),
            secret: SecretRef {
                source: dbtools::contract::SecretSource::AwsSm,
                reference: secret_arn.unwrap_or(secret_name),
            },
            stamp: None,
        },
    ))
}
