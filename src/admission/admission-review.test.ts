import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { admissionResponse, parseAdmissionReview } from './admission-review.js';

describe('parseAdmissionReview', () => {
  it('reads the request fields the webhook uses', () => {
    const parsed = parseAdmissionReview({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: { uid: 'abc', kind: { group: 'apps', version: 'v1', kind: 'Deployment' }, operation: 'CREATE', namespace: 'shop', name: 'web', object: { a: 1 }, oldObject: null, dryRun: true },
    });
    expect(parsed).toEqual({
      ok: true,
      request: { uid: 'abc', kind: { group: 'apps', version: 'v1', kind: 'Deployment' }, operation: 'CREATE', namespace: 'shop', name: 'web', object: { a: 1 }, oldObject: undefined, dryRun: true },
    });
  });

  it('names what is wrong with anything else, and never throws', () => {
    expect(parseAdmissionReview([])).toEqual({ ok: false, problem: 'body is not a JSON object' });
    expect(parseAdmissionReview({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview' })).toEqual({ ok: false, problem: 'expected an admission.k8s.io/v1 AdmissionReview, got admission.k8s.io/v1beta1 AdmissionReview' });
    expect(parseAdmissionReview({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' })).toEqual({ ok: false, problem: 'AdmissionReview has no request' });
    expect(parseAdmissionReview({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: {} })).toEqual({ ok: false, problem: 'request.uid is missing' });
    fc.assert(fc.property(fc.anything(), (body) => typeof parseAdmissionReview(body).ok === 'boolean'));
  });
});

describe('admissionResponse', () => {
  it('echoes the uid; a refusal is a 403 with the message; warnings only when there are some', () => {
    expect(admissionResponse('u1', { allowed: true })).toEqual({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'u1', allowed: true } });
    expect(admissionResponse('u2', { allowed: false, message: 'no', warnings: ['w'] }).response).toEqual({ uid: 'u2', allowed: false, status: { code: 403, reason: 'Forbidden', message: 'no' }, warnings: ['w'] });
  });
});
