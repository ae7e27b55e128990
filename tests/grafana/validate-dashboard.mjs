// Validates Grafana dashboard JSON files against Grafana's own schema.
//
// The schema comes from the npm package @grafana/schema: its generated TypeScript types for the
// dashboard (raw/dashboard/x) and for each panel plugin's options and field config
// (raw/composable/<panel>/panelcfg/x). ts-json-schema-generator turns those types into JSON
// Schema (interfaces closed: an unknown property is an error), ajv validates. Panel options are
// validated against the panel type's own `Options`, field config against its `FieldConfig`.
// A few rules Grafana enforces at load time but the types cannot say are checked as well
// (unique panel ids, a 24-column grid without overlaps, every query bound to the datasource
// variable).
//
// Usage: node validate-dashboard.mjs DASHBOARD.json...   Prints a JSON report; exit 1 on errors.
// Runs offline once `npm ci` has installed the packages next to this file.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import Ajv from "ajv";
import { createGenerator } from "ts-json-schema-generator";

const here = path.dirname(fileURLToPath(import.meta.url));
const types = path.join(here, "node_modules", "@grafana", "schema", "dist", "types", "raw");
const ajv = new Ajv({ allErrors: true, strict: false });
const validators = new Map();

function validator(file, type) {
  const key = `${file}#${type}`;
  if (!validators.has(key)) {
    let validate = null;
    if (fs.existsSync(file)) {
      const generator = createGenerator({ path: file, type, skipTypeCheck: true, expose: "all", topRef: true });
      try {
        validate = ajv.compile(generator.createSchema(type));
      } catch (err) {
        if (!String(err).includes("No root type")) throw err;
      }
    }
    validators.set(key, validate);
  }
  return validators.get(key);
}

function panelValidator(panelType, type) {
  return validator(path.join(types, "composable", panelType, "panelcfg", "x", "types.gen.d.ts"), type);
}

function describe(errors) {
  return errors.slice(0, 8).map((e) => `${e.instancePath || "/"} ${e.message}${e.params?.additionalProperty ? `: ${e.params.additionalProperty}` : ""}`);
}

function* panelsOf(dashboard) {
  for (const panel of dashboard.panels ?? []) {
    yield panel;
    for (const inner of panel.panels ?? []) yield inner;
  }
}

function overlaps(a, b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

function importHeaderErrors(inputs, requires, dashboard) {
  const errors = [];
  for (const input of inputs) {
    if (!input.name || !input.label || !["datasource", "constant"].includes(input.type)) errors.push(`__inputs ${input.name}: needs name, label and type datasource|constant`);
    if (input.type === "datasource" && !input.pluginId) errors.push(`__inputs ${input.name}: a datasource input needs pluginId`);
  }
  for (const req of requires) {
    if (!["grafana", "datasource", "panel"].includes(req.type) || !req.id || !req.name || typeof req.version !== "string") errors.push(`__requires ${req.id}: needs type, id, name and version`);
  }
  if (inputs.length || requires.length) {
    const required = new Set(requires.filter((r) => r.type === "panel").map((r) => r.id));
    for (const panel of panelsOf(dashboard)) if (panel.type !== "row" && !required.has(panel.type)) errors.push(`__requires: panel type ${panel.type} missing`);
    const pluginIds = new Set(inputs.filter((i) => i.type === "datasource").map((i) => i.pluginId));
    for (const variable of dashboard.templating?.list ?? []) {
      if (variable.type === "datasource" && !pluginIds.has(variable.query)) errors.push(`__inputs: no datasource input for plugin ${variable.query}`);
    }
  }
  return errors;
}

function check(file) {
  const errors = [];
  const exported = JSON.parse(fs.readFileSync(file, "utf-8"));
  // `__inputs`/`__requires` are the grafana.com import header: Grafana's import reads and drops them
  // (provisioning ignores them), so the stored dashboard the schema describes is the rest.
  const { __inputs: inputs = [], __requires: requires = [], ...dashboard } = exported;
  errors.push(...importHeaderErrors(inputs, requires, dashboard));
  const validateDashboard = validator(path.join(types, "dashboard", "x", "types.gen.d.ts"), "Dashboard");
  if (!validateDashboard(dashboard)) errors.push(...describe(validateDashboard.errors).map((e) => `dashboard: ${e}`));

  const variables = dashboard.templating?.list ?? [];
  const datasource = variables.find((v) => v.type === "datasource");
  if (!datasource || datasource.query !== "prometheus") errors.push("templating: no Prometheus datasource variable");
  const dsRef = datasource ? `\${${datasource.name}}` : null;
  for (const variable of variables.filter((v) => v.type === "query")) {
    if (variable.datasource?.uid !== dsRef) errors.push(`templating ${variable.name}: not bound to ${dsRef}`);
  }

  const ids = new Set();
  const placed = [];
  const panelTypes = new Set();
  for (const panel of panelsOf(dashboard)) {
    const where = `panel ${panel.id} "${panel.title ?? ""}" (${panel.type})`;
    panelTypes.add(panel.type);
    if (ids.has(panel.id)) errors.push(`${where}: duplicate id`);
    ids.add(panel.id);
    const grid = panel.gridPos;
    if (!grid || grid.x < 0 || grid.w < 1 || grid.x + grid.w > 24 || grid.h < 1) errors.push(`${where}: bad gridPos`);
    else {
      for (const other of placed) if (overlaps(grid, other.grid)) errors.push(`${where}: overlaps panel ${other.id}`);
      placed.push({ id: panel.id, grid });
    }
    if (panel.type === "row") continue;
    const options = panelValidator(panel.type, "Options");
    if (options === null) errors.push(`${where}: @grafana/schema knows no panel type ${panel.type}`);
    else if (!options(panel.options ?? {})) errors.push(...describe(options.errors).map((e) => `${where} options: ${e}`));
    const custom = panelValidator(panel.type, "FieldConfig");
    const value = panel.fieldConfig?.defaults?.custom;
    if (custom && value !== undefined && !custom(value)) {
      errors.push(...describe(custom.errors).map((e) => `${where} fieldConfig.defaults.custom: ${e}`));
    }
    if (panel.type === "text") continue;
    if (panel.datasource?.uid !== dsRef) errors.push(`${where}: datasource is not ${dsRef}`);
    const targets = panel.targets ?? [];
    if (!targets.length) errors.push(`${where}: no query`);
    for (const target of targets) {
      if (!target.refId || typeof target.expr !== "string" || !target.expr.trim()) errors.push(`${where}: query without refId or expr`);
      if (target.datasource && target.datasource.uid !== dsRef) errors.push(`${where} ${target.refId}: datasource is not ${dsRef}`);
    }
  }
  return { file, panels: ids.size, panelTypes: [...panelTypes].sort(), errors };
}

const reports = process.argv.slice(2).map(check);
process.stdout.write(JSON.stringify(reports, null, 2) + "\n");
process.exit(reports.some((r) => r.errors.length) ? 1 : 0);
