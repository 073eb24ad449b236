/**
 * Validates HTTP responses against the official Symphony API descriptions copied into `spec/symphony/`
 * (pod and login: Swagger 2.0; agent: OpenAPI 3.0.1). Reusable by any test that talks to a Symphony-shaped
 * server: `const v = OpenApiValidator.load(); v.assertResponse('agent', 'get', '/v4/stream/{sid}/message', res)`.
 *
 * Each document's schemas (`definitions` / `components.schemas`) become one Ajv schema with its own `$id`;
 * local `$ref`s are rewritten to point at it, OAS3 `nullable` becomes a JSON Schema type union, and the
 * vendor keywords (`x-since`, `example`, …) are tolerated with `strict: false`.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import formatsModule from 'ajv-formats';
import { parse } from 'yaml';

const addFormats = formatsModule.default;

export type ApiName = 'pod' | 'agent' | 'login';

const SPEC_FILES: Record<ApiName, string> = {
  pod: 'pod/pod-api-public.yaml',
  agent: 'agent/agent-api-public.yaml',
  login: 'login/login-api-public.yaml',
};

/** Where the specs live; the project must not depend on anything outside itself at test time. */
export const SPEC_ROOT = fileURLToPath(new URL('../../../spec/symphony/', import.meta.url));

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

export interface HttpResult {
  status: number;
  /** Response content type (parameters ignored); optional. */
  contentType?: string | null;
  /** Parsed JSON for JSON bodies, the raw text otherwise, `undefined` or `''` for an empty body. */
  body: unknown;
}

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function schemaId(api: ApiName): string {
  return `https://symphony-spec.invalid/${api}.json`;
}

/** Rewrites refs to the per-document schema id and turns OAS3 `nullable` into JSON Schema. */
function normalise(api: ApiName, node: Json): Json {
  if (Array.isArray(node)) return node.map((n) => normalise(api, n));
  if (!isObject(node)) return node;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === '$ref' && typeof value === 'string') {
      const m = /^#\/(?:definitions|components\/schemas)\/(.+)$/.exec(value);
      out.$ref = m ? `${schemaId(api)}#/definitions/${m[1]}` : value;
    } else if (key === 'nullable' || key === 'discriminator' || key === 'xml') {
      // handled below / not validation keywords
    } else if (key === 'properties' && isObject(value)) {
      // Property names are not keywords: never treat a property called "nullable" or "$ref" as one.
      const props: JsonObject = {};
      for (const [name, schema] of Object.entries(value)) props[name] = normalise(api, schema);
      out.properties = props;
    } else {
      out[key] = normalise(api, value);
    }
  }
  if (node.nullable === true) {
    if (typeof out.type === 'string') out.type = [out.type, 'null'];
    else if (Array.isArray(out.type) && !out.type.includes('null')) out.type = [...out.type, 'null'];
    if (Array.isArray(out.enum) && !out.enum.includes(null)) out.enum = [...out.enum, null];
    if (out.$ref !== undefined) {
      // A `$ref` with siblings: keep the reference and also accept null.
      const ref = out.$ref;
      delete out.$ref;
      out.anyOf = [{ $ref: ref }, { type: 'null' }];
    }
  }
  return out;
}

interface LoadedApi {
  doc: JsonObject;
  openapi3: boolean;
}

export class OpenApiValidator {
  private readonly ajv: Ajv;
  private readonly apis = new Map<ApiName, LoadedApi>();
  private readonly cache = new Map<string, ValidateFunction>();

  private constructor() {
    this.ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false, logger: false });
    addFormats(this.ajv);
    // Formats the Symphony specs use that JSON Schema does not define.
    this.ajv.addFormat('MessageMLV2', true);
    this.ajv.addFormat('JSON', (s: string) => {
      try {
        JSON.parse(s);
        return true;
      } catch {
        return false;
      }
    });
    for (const api of Object.keys(SPEC_FILES) as ApiName[]) {
      const doc = parse(readFileSync(SPEC_ROOT + SPEC_FILES[api], 'utf8')) as JsonObject;
      const openapi3 = typeof doc.openapi === 'string';
      const defs = openapi3 ? (isObject(doc.components) ? doc.components.schemas : undefined) : doc.definitions;
      this.ajv.addSchema({ $id: schemaId(api), definitions: normalise(api, defs ?? {}) } as object);
      this.apis.set(api, { doc, openapi3 });
    }
  }

  /** Loads the three specs from `spec/symphony/`. */
  static load(): OpenApiValidator {
    return new OpenApiValidator();
  }

  /** Errors of `value` against a named schema (`definitions` / `components.schemas`), empty when valid. */
  validateSchema(api: ApiName, name: string, value: unknown): string[] {
    const key = `${api}#${name}`;
    let fn = this.cache.get(key);
    if (!fn) {
      if (!this.ajv.getSchema(`${schemaId(api)}#/definitions/${name}`)) throw new Error(`${api}: no schema ${name}`);
      fn = this.ajv.compile({ $ref: `${schemaId(api)}#/definitions/${name}` });
      this.cache.set(key, fn);
    }
    return fn(value) ? [] : formatErrors(fn.errors);
  }

  /**
   * The schema the spec declares for a response (`undefined` when it declares no body), or a reason why the
   * status is not declared. Throws when the operation itself is unknown.
   */
  private responseSchema(
    api: ApiName,
    method: string,
    path: string,
    res: HttpResult,
  ): { schema: Json | undefined } | { undeclared: string } {
    const loaded = this.apis.get(api);
    if (!loaded) throw new Error(`unknown api ${api}`);
    const paths = loaded.doc.paths;
    const item = isObject(paths) ? paths[path] : undefined;
    const op = isObject(item) ? item[method.toLowerCase()] : undefined;
    if (!isObject(op)) throw new Error(`${api}: no operation ${method.toUpperCase()} ${path}`);
    const responses = op.responses;
    if (!isObject(responses)) throw new Error(`${api}: ${method} ${path} declares no responses`);
    const declared = responses[String(res.status)] ?? responses.default;
    if (!isObject(declared)) {
      return { undeclared: `status ${res.status} is not declared for ${method.toUpperCase()} ${path}` };
    }
    if (!loaded.openapi3) return { schema: declared.schema };
    const content = declared.content;
    if (!isObject(content) || Object.keys(content).length === 0) return { schema: undefined };
    const type = (res.contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    const media = content[type] ?? content['application/json'] ?? Object.values(content)[0];
    return { schema: isObject(media) ? media.schema : undefined };
  }

  /**
   * Errors of a response against the operation's declared response for its status, empty when valid.
   * `path` is the spec's path template without the base path, e.g. `/v4/stream/{sid}/message`.
   */
  validateResponse(api: ApiName, method: string, path: string, res: HttpResult): string[] {
    const found = this.responseSchema(api, method, path, res);
    if ('undeclared' in found) return [found.undeclared];
    // A 204 never has a body (RFC 9110 §15.3.5), whatever content the spec lists for it (DELETE /v5/datafeeds/{id}).
    const schema = res.status === 204 ? undefined : found.schema;
    if (schema === undefined) {
      const empty = res.body === undefined || res.body === '' || res.body === null;
      return empty ? [] : [`status ${res.status} declares no body but one was sent`];
    }
    const key = `${api} ${method} ${path} ${res.status} ${res.contentType ?? ''}`;
    let fn = this.cache.get(key);
    if (!fn) {
      fn = this.ajv.compile(normalise(api, schema) as object);
      this.cache.set(key, fn);
    }
    return fn(res.body) ? [] : formatErrors(fn.errors);
  }

  /**
   * Properties of a response body that its schema does not list. The Symphony specs never forbid extra
   * properties, so the validator accepts them; a fake pod should still not invent fields that clients
   * might come to rely on. Objects whose schema composes others (`allOf`, …) or allows
   * `additionalProperties` are not judged.
   */
  undocumentedProperties(api: ApiName, method: string, path: string, res: HttpResult): string[] {
    const found = this.responseSchema(api, method, path, res);
    if ('undeclared' in found || found.schema === undefined) return [];
    const out: string[] = [];
    this.walkProperties(api, found.schema, res.body, '', out, 0);
    return out;
  }

  private walkProperties(api: ApiName, schema: Json, value: unknown, at: string, out: string[], depth: number): void {
    if (depth > 32 || !isObject(schema)) return;
    const ref = schema.$ref;
    if (typeof ref === 'string') {
      const m = /^#\/(?:definitions|components\/schemas)\/(.+)$/.exec(ref);
      const loaded = this.apis.get(api);
      if (!m || !loaded) return;
      const defs = loaded.openapi3
        ? isObject(loaded.doc.components)
          ? loaded.doc.components.schemas
          : undefined
        : loaded.doc.definitions;
      const target = isObject(defs) ? defs[m[1] as string] : undefined;
      if (target !== undefined) this.walkProperties(api, target, value, at, out, depth + 1);
      return;
    }
    if (Array.isArray(value)) {
      const items = schema.items;
      if (items !== undefined)
        value.forEach((v, i) => this.walkProperties(api, items, v, `${at}/${i}`, out, depth + 1));
      return;
    }
    if (typeof value !== 'object' || value === null) return;
    if (schema.allOf || schema.anyOf || schema.oneOf || schema.additionalProperties !== undefined) return;
    const props = schema.properties;
    if (!isObject(props)) return;
    for (const [key, v] of Object.entries(value)) {
      const sub = props[key];
      if (sub === undefined) out.push(`${at}/${key}`);
      else this.walkProperties(api, sub, v, `${at}/${key}`, out, depth + 1);
    }
  }

  /** Throws with every schema violation listed. */
  assertResponse(api: ApiName, method: string, path: string, res: HttpResult): void {
    const errors = this.validateResponse(api, method, path, res);
    if (errors.length > 0) {
      throw new Error(
        `${api} ${method.toUpperCase()} ${path} → ${res.status} violates the spec:\n  ${errors.join('\n  ')}`,
      );
    }
  }

  assertSchema(api: ApiName, name: string, value: unknown): void {
    const errors = this.validateSchema(api, name, value);
    if (errors.length > 0) throw new Error(`${api} ${name} violates the spec:\n  ${errors.join('\n  ')}`);
  }
}

function formatErrors(errors: ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).slice(0, 20).map((e) => `${e.instancePath || '/'} ${e.message ?? e.keyword}`);
}
