//! The OpenAPI 3.0 description of the admin API, served at `GET /v1/openapi.json`. Written by
//! hand next to the handlers in [`crate::admin`]; a test checks that it lists exactly the
//! routes the router serves.

use serde_json::{Value, json};

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

fn answer(description: &str, schema: Option<Value>) -> Value {
    match schema {
        Some(schema) => json!({
            "description": description,
            "content": { "application/json": { "schema": schema } }
        }),
        None => json!({ "description": description }),
    }
}

fn error(description: &str) -> Value {
    answer(description, Some(schema_ref("Error")))
}

fn path_param(name: &str, description: &str) -> Value {
    json!({
        "name": name, "in": "path", "required": true, "description": description,
        "schema": { "type": "string" }
    })
}

fn user_param() -> Value {
    path_param("name", "Login name (case-insensitive).")
}

/// An operation with the answers every authenticated route shares (401, and 404 for routes
/// naming something).
fn operation(
    summary: &str,
    params: Vec<Value>,
    body: Option<Value>,
    mut responses: Value,
) -> Value {
    let map = responses.as_object_mut().expect("responses are an object");
    map.insert("401".into(), error("Missing or wrong bearer token."));
    let mut op = json!({
        "summary": summary,
        "parameters": params,
        "responses": responses,
        "security": [{ "bearer": [] }],
    });
    if let Some(body) = body {
        op["requestBody"] = body;
    }
    op
}

/// The document.
pub fn document() -> Value {
    let nullable_u64 =
        json!({ "type": "integer", "format": "int64", "minimum": 0, "nullable": true });
    let u64_schema = json!({ "type": "integer", "format": "int64", "minimum": 0 });
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Yubin admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Accounts, quotas, aliases, domains and mailboxes of a Yubin installation. \
                Errors are {\"error\": \"...\"} with 400 (malformed input), 401, 404, 405, 409 \
                (already exists), 415 (body not JSON) or 422 (JSON of the wrong shape)."
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer",
                "description": "The YUBIN_ADMIN_TOKEN of the server." } },
            "schemas": {
                "Error": { "type": "object", "required": ["error"],
                    "properties": { "error": { "type": "string" } } },
                "User": { "type": "object", "required": ["id", "name", "disabled"],
                    "properties": { "id": u64_schema, "name": { "type": "string" },
                        "disabled": { "type": "boolean" } } },
                "UserPage": { "type": "object", "required": ["users", "next_after"],
                    "properties": {
                        "users": { "type": "array", "items": schema_ref("User") },
                        "next_after": { "type": "string", "nullable": true,
                            "description": "Cursor for the next page (pass as `after`); null on the last page." } } },
                "CreateUser": { "type": "object", "required": ["name", "password"],
                    "additionalProperties": false,
                    "properties": {
                        "name": { "type": "string", "pattern": "^[a-z0-9._@-]{1,64}$" },
                        "password": { "type": "string", "minLength": 1, "maxLength": 1024,
                            "description": "Hashed with Argon2id before it is stored; never logged." } } },
                "CreatedUser": { "type": "object", "required": ["id", "name"],
                    "properties": { "id": u64_schema, "name": { "type": "string" } } },
                "PatchUser": { "type": "object", "required": ["disabled"], "additionalProperties": false,
                    "properties": { "disabled": { "type": "boolean",
                        "description": "A disabled account cannot log in and receives no mail; its data is kept." } } },
                "DeletedUser": { "type": "object", "required": ["id", "name", "blobs_deleted"],
                    "properties": { "id": u64_schema, "name": { "type": "string" },
                        "blobs_deleted": u64_schema } },
                "Password": { "type": "object", "required": ["password"], "additionalProperties": false,
                    "properties": { "password": { "type": "string", "minLength": 1, "maxLength": 1024 } } },
                "QuotaLimits": { "type": "object", "additionalProperties": false,
                    "description": "RFC 9208 STORAGE (bytes here) and MESSAGE limits; null or absent means unlimited.",
                    "properties": { "storage_bytes": nullable_u64, "messages": nullable_u64 } },
                "Usage": { "type": "object", "required": ["limits", "storage_bytes", "messages"],
                    "properties": { "limits": schema_ref("QuotaLimits"),
                        "storage_bytes": u64_schema, "messages": u64_schema } },
                "Mailbox": { "type": "object",
                    "required": ["name", "id", "messages", "unseen", "size", "uid_validity", "uid_next", "special_use"],
                    "properties": { "name": { "type": "string" }, "id": u64_schema,
                        "messages": u64_schema, "unseen": u64_schema, "size": u64_schema,
                        "uid_validity": u64_schema, "uid_next": u64_schema,
                        "special_use": { "type": "string", "nullable": true } } },
                "CreateMailbox": { "type": "object", "required": ["name"], "additionalProperties": false,
                    "properties": { "name": { "type": "string", "description": "`/`-delimited, UTF-8." },
                        "special_use": { "type": "string", "nullable": true,
                            "enum": ["\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash", null] } } },
                "Alias": { "type": "object", "required": ["address", "target"],
                    "properties": { "address": { "type": "string" },
                        "target": { "type": "string", "description": "Login name of the account." } } },
                "AliasTarget": { "type": "object", "required": ["target"], "additionalProperties": false,
                    "properties": { "target": { "type": "string", "description": "Login name of the account." } } },
                "Domain": { "type": "object", "required": ["name", "alias_of"],
                    "properties": { "name": { "type": "string" },
                        "alias_of": { "type": "string", "nullable": true } } },
                "DomainSettings": { "type": "object", "additionalProperties": false,
                    "properties": { "alias_of": { "type": "string", "nullable": true,
                        "description": "Make this an alias domain of a configured, non-alias domain." } } }
            }
        },
        "paths": {
            "/v1/openapi.json": { "get": {
                "summary": "This document (no token needed).",
                "responses": { "200": { "description": "OpenAPI 3.0 document.",
                    "content": { "application/json": { "schema": { "type": "object" } } } } }
            } },
            "/v1/users": {
                "get": operation("List accounts by name, one page at a time.",
                    vec![
                        json!({ "name": "after", "in": "query", "required": false,
                            "description": "Return accounts whose name sorts after this one.",
                            "schema": { "type": "string" } }),
                        json!({ "name": "limit", "in": "query", "required": false,
                            "description": "Page size, 1-1000 (default 100).",
                            "schema": { "type": "integer", "minimum": 1, "maximum": 1000 } }),
                    ],
                    None,
                    json!({ "200": answer("A page of accounts.", Some(schema_ref("UserPage"))),
                            "400": error("Bad `after` or `limit`.") })),
                "post": operation("Create an account (with an INBOX).", vec![],
                    Some(json_body(schema_ref("CreateUser"))),
                    json!({ "201": answer("Created.", Some(schema_ref("CreatedUser"))),
                            "400": error("Bad name, password or JSON."),
                            "409": error("The name is taken."),
                            "415": error("Body is not JSON."),
                            "422": error("JSON of the wrong shape.") }))
            },
            "/v1/users/{name}": {
                "get": operation("One account.", vec![user_param()], None,
                    json!({ "200": answer("The account.", Some(schema_ref("User"))),
                            "404": error("No such account.") })),
                "patch": operation("Disable or enable an account.", vec![user_param()],
                    Some(json_body(schema_ref("PatchUser"))),
                    json!({ "200": answer("The account.", Some(schema_ref("User"))),
                            "400": error("Malformed JSON."),
                            "404": error("No such account."),
                            "422": error("JSON of the wrong shape.") })),
                "delete": operation("Delete an account: its metadata (mailboxes, messages, aliases), then every message body.",
                    vec![user_param()], None,
                    json!({ "200": answer("Deleted.", Some(schema_ref("DeletedUser"))),
                            "404": error("No such account."),
                            "503": error("The account is deleted but the blob store failed; bodies remain under u/<id>/.") }))
            },
            "/v1/users/{name}/password": {
                "put": operation("Set the password.", vec![user_param()],
                    Some(json_body(schema_ref("Password"))),
                    json!({ "204": answer("Changed.", None),
                            "400": error("Empty or too long password, malformed JSON."),
                            "404": error("No such account."),
                            "422": error("JSON of the wrong shape.") }))
            },
            "/v1/users/{name}/quota": {
                "put": operation("Set the quota limits (RFC 9208 STORAGE and MESSAGE).", vec![user_param()],
                    Some(json_body(schema_ref("QuotaLimits"))),
                    json!({ "200": answer("Limits and usage.", Some(schema_ref("Usage"))),
                            "400": error("Malformed JSON."),
                            "404": error("No such account."),
                            "422": error("JSON of the wrong shape (e.g. a negative limit).") }))
            },
            "/v1/users/{name}/usage": {
                "get": operation("Quota limits and exact usage.", vec![user_param()], None,
                    json!({ "200": answer("Limits and usage.", Some(schema_ref("Usage"))),
                            "404": error("No such account.") }))
            },
            "/v1/users/{name}/mailboxes": {
                "get": operation("The account's mailboxes.", vec![user_param()], None,
                    json!({ "200": answer("Mailboxes.", Some(json!({ "type": "array", "items": schema_ref("Mailbox") }))),
                            "404": error("No such account.") })),
                "post": operation("Create a mailbox (and its missing superiors).", vec![user_param()],
                    Some(json_body(schema_ref("CreateMailbox"))),
                    json!({ "201": answer("Created.", Some(schema_ref("Mailbox"))),
                            "400": error("Bad mailbox name or special use, malformed JSON."),
                            "404": error("No such account."),
                            "409": error("The mailbox exists."),
                            "422": error("JSON of the wrong shape.") }))
            },
            "/v1/users/{name}/mailboxes/{mailbox}": {
                "delete": operation("Delete a mailbox and its messages (not INBOX).",
                    vec![user_param(), path_param("mailbox", "Mailbox name; `/` may be sent as is or as %2F.")],
                    None,
                    json!({ "204": answer("Deleted.", None),
                            "400": error("INBOX or a bad name."),
                            "404": error("No such account or mailbox.") }))
            },
            "/v1/aliases": {
                "get": operation("Every address alias.", vec![], None,
                    json!({ "200": answer("Aliases.", Some(json!({ "type": "array", "items": schema_ref("Alias") }))) }))
            },
            "/v1/aliases/{address}": {
                "put": operation("Deliver mail for an address to an account (creates or re-points the alias).",
                    vec![path_param("address", "Full address, local@domain.")],
                    Some(json_body(schema_ref("AliasTarget"))),
                    json!({ "200": answer("The alias.", Some(schema_ref("Alias"))),
                            "400": error("Bad address, malformed JSON."),
                            "404": error("No such account."),
                            "409": error("An account has that name."),
                            "422": error("JSON of the wrong shape.") })),
                "delete": operation("Remove an alias.", vec![path_param("address", "Full address.")], None,
                    json!({ "204": answer("Removed.", None), "404": error("No such alias.") }))
            },
            "/v1/domains": {
                "get": operation("The installation's domains.", vec![], None,
                    json!({ "200": answer("Domains.", Some(json!({ "type": "array", "items": schema_ref("Domain") }))) }))
            },
            "/v1/domains/{domain}": {
                "put": operation("Add (or change) a domain; with alias_of, an alias domain.",
                    vec![path_param("domain", "Domain name.")],
                    Some(json_body(schema_ref("DomainSettings"))),
                    json!({ "200": answer("The domain.", Some(schema_ref("Domain"))),
                            "400": error("Bad name, an alias chain or an unknown target."),
                            "422": error("JSON of the wrong shape.") })),
                "delete": operation("Remove a domain.", vec![path_param("domain", "Domain name.")], None,
                    json!({ "204": answer("Removed.", None),
                            "400": error("Other domains are aliases of it."),
                            "404": error("No such domain.") }))
            }
        }
    })
}
