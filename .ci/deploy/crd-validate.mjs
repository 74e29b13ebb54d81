// Validates custom resources (Argo Rollouts, Prometheus Operator) against the OpenAPI
// schemas of their CRDs, as packaged by the @kubernetes-models npm packages.
//
//   node crd-validate.mjs OBJECTS.json      (a JSON array of objects)
//
// Prints one line per object; exits 1 if any object is invalid or of an unknown kind.
import { readFileSync } from "node:fs";
import * as argo from "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1";
import * as monitoring from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const models = {
  "argoproj.io/v1alpha1": argo,
  "monitoring.coreos.com/v1": monitoring,
};

const objects = JSON.parse(readFileSync(process.argv[2], "utf8"));
let failed = 0;
for (const obj of objects) {
  const name = `${obj.kind}/${obj.metadata?.name}`;
  const Model = models[obj.apiVersion]?.[obj.kind];
  if (!Model) {
    console.log(`FAIL ${name}: no schema for ${obj.apiVersion} ${obj.kind}`);
    failed++;
    continue;
  }
  try {
    new Model(obj).validate();
    console.log(`ok   ${name} (${obj.apiVersion})`);
  } catch (err) {
    console.log(`FAIL ${name}: ${err.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
