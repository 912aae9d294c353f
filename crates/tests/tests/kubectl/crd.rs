//! A CustomResourceDefinition through kubectl: applied, Established, an instance created
//! and listed with the CRD's printer columns.

use rkube_tests::kubectl::Kubectl;

use crate::workloads::wait;

fn crd(group: &str) -> String {
    format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct]}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cronSpec: {{type: string}}
              replicas: {{type: integer}}
    additionalPrinterColumns:
    - {{name: Spec, type: string, jsonPath: .spec.cronSpec}}
    - {{name: Replicas, type: integer, jsonPath: .spec.replicas}}
"#
    )
}

pub fn check(k: &Kubectl, ns: &str) {
    let group = format!("{ns}.example.com");
    let out = k.apply_stdin(&crd(&group), &[]);
    assert!(
        out.status.success(),
        "{}",
        rkube_tests::kubectl::text(&out.stderr)
    );
    let name = format!("crd/crontabs.{group}");
    k.ok(&[
        "wait",
        "--for=condition=Established",
        &name,
        "--timeout=30s",
    ]);
    let cr = format!(
        "apiVersion: {group}/v1\nkind: CronTab\nmetadata:\n  name: nightly\n  namespace: {ns}\nspec:\n  cronSpec: \"0 3 * * *\"\n  replicas: 2\n"
    );
    wait(30, "the CronTab kind served", || {
        k.apply_stdin(&cr, &[]).status.success()
    });
    let table = k.ok(&["get", &format!("crontabs.{group}"), "-n", ns]);
    let header = table.lines().next().unwrap_or("");
    assert!(
        header.starts_with("NAME") && header.contains("SPEC") && header.contains("REPLICAS"),
        "printer columns:\n{table}"
    );
    assert!(
        table.contains("0 3 * * *") && table.contains("nightly"),
        "{table}"
    );
    let res = k.ok(&["api-resources", &format!("--api-group={group}")]);
    assert!(res.contains("crontabs") && res.contains("ct"), "{res}");
    k.ok(&["delete", &name, "--wait"]);
}
