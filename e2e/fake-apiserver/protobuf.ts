// Just enough Kubernetes protobuf decoding for kubectl's generator commands (`kubectl create namespace|
// secret|configmap|serviceaccount|deployment`), which send `application/vnd.kubernetes.protobuf` bodies.
// Field numbers are those of k8s.io/api's generated.proto; fields not listed here are dropped.
import { badRequest } from './errors.js';

type FieldType = 'string' | 'bytes' | 'varint' | 'bool' | 'stringMap' | 'bytesMap' | Schema;

interface FieldSpec {
  name: string;
  type: FieldType;
  repeated?: boolean;
}

interface Schema {
  fields: Record<number, FieldSpec>;
}

const LOCAL_REF: Schema = { fields: { 1: { name: 'name', type: 'string' } } };
const OWNER_REF: Schema = {
  fields: {
    1: { name: 'kind', type: 'string' },
    3: { name: 'name', type: 'string' },
    4: { name: 'uid', type: 'string' },
    5: { name: 'apiVersion', type: 'string' },
    6: { name: 'controller', type: 'bool' },
    7: { name: 'blockOwnerDeletion', type: 'bool' },
  },
};
const OBJECT_META: Schema = {
  fields: {
    1: { name: 'name', type: 'string' },
    2: { name: 'generateName', type: 'string' },
    3: { name: 'namespace', type: 'string' },
    5: { name: 'uid', type: 'string' },
    6: { name: 'resourceVersion', type: 'string' },
    11: { name: 'labels', type: 'stringMap' },
    12: { name: 'annotations', type: 'stringMap' },
    13: { name: 'ownerReferences', type: OWNER_REF, repeated: true },
    14: { name: 'finalizers', type: 'string', repeated: true },
  },
};
const CONTAINER: Schema = {
  fields: {
    1: { name: 'name', type: 'string' },
    2: { name: 'image', type: 'string' },
    3: { name: 'command', type: 'string', repeated: true },
    4: { name: 'args', type: 'string', repeated: true },
    14: { name: 'imagePullPolicy', type: 'string' },
  },
};
const POD_SPEC: Schema = {
  fields: {
    2: { name: 'containers', type: CONTAINER, repeated: true },
    3: { name: 'restartPolicy', type: 'string' },
    8: { name: 'serviceAccountName', type: 'string' },
    15: { name: 'imagePullSecrets', type: LOCAL_REF, repeated: true },
    20: { name: 'initContainers', type: CONTAINER, repeated: true },
  },
};
const LABEL_SELECTOR: Schema = { fields: { 1: { name: 'matchLabels', type: 'stringMap' } } };
const POD_TEMPLATE: Schema = { fields: { 1: { name: 'metadata', type: OBJECT_META }, 2: { name: 'spec', type: POD_SPEC } } };

/** Schemas by `apiVersion/kind`. */
const KINDS: Record<string, Schema> = {
  'v1/Namespace': { fields: { 1: { name: 'metadata', type: OBJECT_META }, 2: { name: 'spec', type: { fields: { 1: { name: 'finalizers', type: 'string', repeated: true } } } } } },
  'v1/Secret': {
    fields: {
      1: { name: 'metadata', type: OBJECT_META },
      2: { name: 'data', type: 'bytesMap' },
      3: { name: 'type', type: 'string' },
      4: { name: 'stringData', type: 'stringMap' },
      5: { name: 'immutable', type: 'bool' },
    },
  },
  'v1/ConfigMap': {
    fields: {
      1: { name: 'metadata', type: OBJECT_META },
      2: { name: 'data', type: 'stringMap' },
      3: { name: 'binaryData', type: 'bytesMap' },
      4: { name: 'immutable', type: 'bool' },
    },
  },
  'v1/ServiceAccount': {
    fields: {
      1: { name: 'metadata', type: OBJECT_META },
      3: { name: 'imagePullSecrets', type: LOCAL_REF, repeated: true },
      4: { name: 'automountServiceAccountToken', type: 'bool' },
    },
  },
  'apps/v1/Deployment': {
    fields: {
      1: { name: 'metadata', type: OBJECT_META },
      2: {
        name: 'spec',
        type: { fields: { 1: { name: 'replicas', type: 'varint' }, 2: { name: 'selector', type: LABEL_SELECTOR }, 3: { name: 'template', type: POD_TEMPLATE } } },
      },
    },
  },
};

class Reader {
  pos = 0;
  constructor(private readonly buf: Buffer) {}

  done(): boolean {
    return this.pos >= this.buf.length;
  }

  varint(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.buf.length) throw badRequest('protobuf: truncated varint');
      const b = this.buf[this.pos++] ?? 0;
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 63) throw badRequest('protobuf: varint too long');
    }
  }

  bytes(): Buffer {
    const len = this.varint();
    if (this.pos + len > this.buf.length) throw badRequest('protobuf: truncated field');
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  skip(wireType: number): void {
    if (wireType === 0) this.varint();
    else if (wireType === 1) this.pos += 8;
    else if (wireType === 2) this.bytes();
    else if (wireType === 5) this.pos += 4;
    else throw badRequest(`protobuf: unsupported wire type ${wireType}`);
  }
}

function decodeMapEntry(buf: Buffer, valueAsBytes: boolean): [string, string] {
  const r = new Reader(buf);
  let key = '';
  let value = '';
  while (!r.done()) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    if (field === 1 && tag % 8 === 2) key = r.bytes().toString('utf8');
    else if (field === 2 && tag % 8 === 2) {
      const raw = r.bytes();
      value = valueAsBytes ? raw.toString('base64') : raw.toString('utf8');
    } else r.skip(tag % 8);
  }
  return [key, value];
}

function decodeMessage(buf: Buffer, schema: Schema): Record<string, unknown> {
  const r = new Reader(buf);
  const out: Record<string, unknown> = {};
  while (!r.done()) {
    const tag = r.varint();
    const wire = tag % 8;
    const spec = schema.fields[Math.floor(tag / 8)];
    if (!spec) {
      r.skip(wire);
      continue;
    }
    let value: unknown;
    if (spec.type === 'varint' || spec.type === 'bool') {
      const n = r.varint();
      value = spec.type === 'bool' ? n !== 0 : n;
    } else {
      const raw = r.bytes();
      if (spec.type === 'string') {
        value = raw.toString('utf8');
        // Go writes empty optional strings; JSON omits them, and so do we.
        if (value === '' && !spec.repeated) continue;
      }
      else if (spec.type === 'bytes') value = raw.toString('base64');
      else if (spec.type === 'stringMap' || spec.type === 'bytesMap') {
        const [k, v] = decodeMapEntry(raw, spec.type === 'bytesMap');
        const map = (out[spec.name] as Record<string, string> | undefined) ?? {};
        map[k] = v;
        out[spec.name] = map;
        continue;
      } else value = decodeMessage(raw, spec.type);
    }
    if (spec.repeated) out[spec.name] = [...((out[spec.name] as unknown[] | undefined) ?? []), value];
    else out[spec.name] = value;
  }
  return out;
}

/** Decodes a `k8s\0`-prefixed runtime.Unknown envelope into a JSON object; 415 for kinds it does not know. */
export function decodeKubeProtobuf(body: Buffer): { obj: Record<string, unknown> } | { unsupported: string } {
  if (body.length < 4 || body.subarray(0, 4).toString('latin1') !== 'k8s\u0000') throw badRequest('protobuf: missing k8s magic prefix');
  const envelope = decodeMessage(body.subarray(4), {
    fields: {
      1: { name: 'typeMeta', type: { fields: { 1: { name: 'apiVersion', type: 'string' }, 2: { name: 'kind', type: 'string' } } } },
      2: { name: 'raw', type: 'bytes' },
    },
  });
  const typeMeta = (envelope.typeMeta as { apiVersion?: string; kind?: string } | undefined) ?? {};
  const key = `${typeMeta.apiVersion ?? ''}/${typeMeta.kind ?? ''}`;
  const schema = KINDS[key];
  if (!schema) return { unsupported: key };
  const raw = Buffer.from(String(envelope.raw ?? ''), 'base64');
  return { obj: { apiVersion: typeMeta.apiVersion, kind: typeMeta.kind, ...decodeMessage(raw, schema) } };
}
