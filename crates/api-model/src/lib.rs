//! What the apiserver and its clients must compute alike from Kubernetes objects:
//! resource quantities, and what an object counts against a ResourceQuota. The server's
//! admission and the controllers' recomputation use the same functions, so they cannot
//! disagree on what a pod costs. The schemas of the built-in kinds, with the patch metadata
//! that decides how their lists merge, and the merge semantics of the REST API built on
//! them: strategic merge patch, server-side apply and the `managedFields` of every write.
//! How objects print as the `meta.k8s.io/v1` Table `kubectl get` asks for: the columns and
//! cells of every built-in kind, and of custom kinds from their CRD's printer columns.

pub mod merge;
pub mod quantity;
pub mod quota;
pub mod schema;
pub mod table;
