//! The request parameters of the operations, as Kubernetes names and describes them, and
//! which operation takes which.

/// Where a parameter goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum In {
    Path,
    Query,
}

/// A request parameter.
#[derive(Debug)]
pub(super) struct Param {
    pub name: &'static str,
    pub location: In,
    /// `string`, `integer` or `boolean`.
    pub ty: &'static str,
    pub description: &'static str,
}

const fn query(name: &'static str, ty: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: In::Query,
        ty,
        description,
    }
}

pub(super) static NAMESPACE: Param = Param {
    name: "namespace",
    location: In::Path,
    ty: "string",
    description: "object name and auth scope, such as for teams and projects",
};
pub(super) static NAME: Param = Param {
    name: "name",
    location: In::Path,
    ty: "string",
    description: "name of the object",
};
pub(super) static PRETTY: Param = query(
    "pretty",
    "string",
    "If 'true', then the output is pretty printed.",
);
static DRY_RUN: Param = query(
    "dryRun",
    "string",
    "When present, indicates that modifications should not be persisted. An invalid or \
     unrecognized dryRun directive will result in an error response and no further \
     processing of the request. Valid values are: - All: all dry run stages will be processed",
);
static FIELD_MANAGER: Param = query(
    "fieldManager",
    "string",
    "fieldManager is a name associated with the actor or entity that is making these \
     changes. The value must be less than or 128 characters long, and only contain printable \
     characters. It is required for apply requests (application/apply-patch).",
);
static FIELD_VALIDATION: Param = query(
    "fieldValidation",
    "string",
    "fieldValidation instructs the server on how to handle objects in the request \
     containing unknown or duplicate fields. Valid values are: - Ignore: unknown fields are \
     dropped silently. - Warn: unknown fields are dropped and a warning is sent for each. \
     - Strict: the request fails with a BadRequest error naming every unknown or duplicate \
     field.",
);
static FORCE: Param = query(
    "force",
    "boolean",
    "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting \
     fields owned by other people. Force flag must be unset for non-apply patch requests.",
);
static LABEL_SELECTOR: Param = query(
    "labelSelector",
    "string",
    "A selector to restrict the list of returned objects by their labels. Defaults to \
     everything.",
);
static FIELD_SELECTOR: Param = query(
    "fieldSelector",
    "string",
    "A selector to restrict the list of returned objects by their fields. Defaults to \
     everything.",
);
static LIMIT: Param = query(
    "limit",
    "integer",
    "limit is a maximum number of responses to return for a list call. If more items exist, \
     the server will set the `continue` field on the list metadata to a value that can be \
     used with the same initial query to retrieve the next set of results.",
);
static CONTINUE: Param = query(
    "continue",
    "string",
    "The continue option should be set when retrieving more results from the server: the \
     value of metadata.continue of the previous list answer.",
);
static RESOURCE_VERSION: Param = query(
    "resourceVersion",
    "string",
    "resourceVersion sets a constraint on what resource versions a request may be served \
     from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions \
     for details. Defaults to unset",
);
static RESOURCE_VERSION_MATCH: Param = query(
    "resourceVersionMatch",
    "string",
    "resourceVersionMatch determines how resourceVersion is applied to list calls. See \
     https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for \
     details. Defaults to unset",
);
static TIMEOUT_SECONDS: Param = query(
    "timeoutSeconds",
    "integer",
    "Timeout for the list/watch call. This limits the duration of the call, regardless of \
     any activity or inactivity.",
);
static WATCH: Param = query(
    "watch",
    "boolean",
    "Watch for changes to the described resources and return them as a stream of add, \
     update, and remove notifications. Specify resourceVersion.",
);
static ALLOW_WATCH_BOOKMARKS: Param = query(
    "allowWatchBookmarks",
    "boolean",
    "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not \
     implement bookmarks may ignore this flag.",
);
static SEND_INITIAL_EVENTS: Param = query(
    "sendInitialEvents",
    "boolean",
    "`sendInitialEvents=true` may be set together with `watch=true`: the watch stream then \
     begins with synthetic events for all objects present, then a bookmark.",
);
static GRACE_PERIOD_SECONDS: Param = query(
    "gracePeriodSeconds",
    "integer",
    "The duration in seconds before the object should be deleted. Value must be non-negative \
     integer. The value zero indicates delete immediately.",
);
static ORPHAN_DEPENDENTS: Param = query(
    "orphanDependents",
    "boolean",
    "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. \
     Should the dependent objects be orphaned.",
);
static PROPAGATION_POLICY: Param = query(
    "propagationPolicy",
    "string",
    "Whether and how garbage collection will be performed: 'Orphan', 'Background' or \
     'Foreground'.",
);

/// Every parameter shared between operations (v2 lists them once under `parameters`).
pub(super) static SHARED: &[&Param] = &[
    &ALLOW_WATCH_BOOKMARKS,
    &CONTINUE,
    &DRY_RUN,
    &FIELD_MANAGER,
    &FIELD_SELECTOR,
    &FIELD_VALIDATION,
    &FORCE,
    &GRACE_PERIOD_SECONDS,
    &LABEL_SELECTOR,
    &LIMIT,
    &NAMESPACE,
    &ORPHAN_DEPENDENTS,
    &PRETTY,
    &PROPAGATION_POLICY,
    &RESOURCE_VERSION,
    &RESOURCE_VERSION_MATCH,
    &SEND_INITIAL_EVENTS,
    &TIMEOUT_SECONDS,
    &WATCH,
];

pub(super) const LIST: &[&Param] = &[
    &ALLOW_WATCH_BOOKMARKS,
    &CONTINUE,
    &FIELD_SELECTOR,
    &LABEL_SELECTOR,
    &LIMIT,
    &RESOURCE_VERSION,
    &RESOURCE_VERSION_MATCH,
    &SEND_INITIAL_EVENTS,
    &TIMEOUT_SECONDS,
    &WATCH,
];
pub(super) const WRITE: &[&Param] = &[&DRY_RUN, &FIELD_MANAGER, &FIELD_VALIDATION];
pub(super) const PATCH_PARAMS: &[&Param] = &[&DRY_RUN, &FIELD_MANAGER, &FIELD_VALIDATION, &FORCE];
pub(super) const DELETE: &[&Param] = &[
    &DRY_RUN,
    &GRACE_PERIOD_SECONDS,
    &ORPHAN_DEPENDENTS,
    &PROPAGATION_POLICY,
];
pub(super) const DELETE_COLLECTION: &[&Param] = &[
    &CONTINUE,
    &DRY_RUN,
    &FIELD_SELECTOR,
    &GRACE_PERIOD_SECONDS,
    &LABEL_SELECTOR,
    &LIMIT,
    &ORPHAN_DEPENDENTS,
    &PROPAGATION_POLICY,
    &RESOURCE_VERSION,
    &RESOURCE_VERSION_MATCH,
    &SEND_INITIAL_EVENTS,
    &TIMEOUT_SECONDS,
];
