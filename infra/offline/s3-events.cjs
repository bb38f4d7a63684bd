/* global require, module, __dirname, console, fetch, setTimeout, clearTimeout */
/* eslint-disable @typescript-eslint/no-require-imports -- CommonJS on purpose: osls require()s plugins, and package.json says "type": "module" */
'use strict';
/**
 * A serverless-offline companion (listed in serverless.yml `plugins`) that gives `npm run offline`
 * an S3 with bucket notifications: on `osls offline start` it starts an S3-protocol server
 * (s3rver, in its own process: ./s3-server.mjs) with the stage's buckets, and delivers each S3
 * event that a function of serverless.yml subscribes to (`events: - s3: { bucket, event, rules }`)
 * to that function, through serverless-offline's own Lambda Invoke API
 * (`POST /2015-03-31/functions/<name>/invocations` on --lambdaPort), so the function runs in the
 * same bundle and warm container that serverless-offline runs.
 *
 * The event is the S3 event record s3rver builds (event structure 2.0: eventSource "aws:s3",
 * eventName "ObjectCreated:Put", bucket, key, size, eTag, sequencer), with the key URL-encoded as
 * S3 encodes it (s3rver leaves it raw) and the bucket ARN in S3's form. Like S3, it does not wait
 * for the function: writes never block on it. Unlike S3, a failed invocation is logged and not
 * retried (the archive sweep picks up what an event missed, as it does on AWS).
 *
 * Settings (`custom.offlineS3`): `port` (default 4569), `directory` (default
 * `.xronox-data/offline/s3`), `buckets` (created at start, besides every bucket an s3 event names),
 * `enabled` (default true). Credentials are s3rver's: access key `S3RVER`, secret `S3RVER`.
 * Nothing happens outside `osls offline start`: packaging and deploying do not load s3rver.
 */
const { fork } = require('node:child_process');
const { mkdirSync } = require('node:fs');
const { join, resolve } = require('node:path');
const process = require('node:process');

const READY_TIMEOUT_MS = 15_000;

class OfflineS3Events {
  constructor(serverless, options, utils) {
    this.serverless = serverless;
    this.options = options;
    this.log = (utils && utils.log) || { notice: console.log, warning: console.warn, error: console.error, verbose: () => undefined };
    this.child = undefined;
    this.hooks = {
      // After serverless-esbuild's build (it is listed first) and before serverless-offline
      // starts its servers.
      'before:offline:start:init': () => this.start(),
      'before:offline:start:end': () => this.stop(),
    };
  }

  settings() {
    const custom = (this.serverless.service.custom && this.serverless.service.custom.offlineS3) || {};
    return {
      enabled: custom.enabled !== false && custom.enabled !== 'false',
      port: Number(custom.port ?? 4569),
      directory: resolve(this.serverless.serviceDir || this.serverless.config.servicePath, custom.directory ?? '.xronox-data/offline/s3'),
      buckets: Array.isArray(custom.buckets) ? custom.buckets.filter((b) => typeof b === 'string' && b !== '') : [],
    };
  }

  /** Every s3 event of every function: which bucket, which event names, which key rules. */
  subscriptions() {
    const service = this.serverless.service;
    const out = [];
    for (const key of service.getAllFunctions()) {
      const fn = service.getFunction(key);
      for (const event of fn.events || []) {
        const s3 = event && event.s3;
        if (!s3) continue;
        const spec = typeof s3 === 'string' ? { bucket: s3 } : s3;
        const events = spec.events || [spec.event || 's3:ObjectCreated:*'];
        const rules = spec.rules || [];
        out.push({
          functionKey: key,
          functionName: fn.name,
          bucket: spec.bucket,
          // `s3:ObjectCreated:*` → /^ObjectCreated:.*$/ (the record's eventName has no `s3:`).
          patterns: events.map((e) => new RegExp(`^${e.replace(/^s3:/, '').replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`)),
          prefix: rules.map((r) => r.prefix).find((p) => typeof p === 'string') ?? '',
          suffix: rules.map((r) => r.suffix).find((s) => typeof s === 'string') ?? '',
        });
      }
    }
    return out;
  }

  async start() {
    const settings = this.settings();
    if (!settings.enabled) {
      this.log.notice('Offline S3: disabled (custom.offlineS3.enabled)');
      return;
    }
    this.subs = this.subscriptions();
    const buckets = [...new Set([...settings.buckets, ...this.subs.map((s) => s.bucket)])];
    mkdirSync(settings.directory, { recursive: true });
    const child = fork(join(__dirname, 's3-server.mjs'), [], {
      execArgv: ['--openssl-legacy-provider'],
      env: { ...process.env, NODE_OPTIONS: '', OFFLINE_S3_PORT: String(settings.port), OFFLINE_S3_DIRECTORY: settings.directory, OFFLINE_S3_BUCKETS: JSON.stringify(buckets) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child = child;
    await new Promise((resolveReady, reject) => {
      const timer = setTimeout(() => reject(new Error(`Offline S3: s3rver did not start within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`Offline S3: s3rver exited (code ${code}, signal ${signal}) before it was ready; is port ${settings.port} free? (custom.offlineS3.port)`));
      });
      child.on('message', (message) => {
        if (message && message.type === 'ready') {
          clearTimeout(timer);
          resolveReady();
        } else if (message && message.type === 'event') {
          this.deliver(message.event);
        }
      });
    });
    child.removeAllListeners('exit');
    child.once('exit', (code, signal) => {
      if (this.child === child) this.log.error(`Offline S3: s3rver exited (code ${code}, signal ${signal})`);
    });
    this.log.notice(`Offline S3: http://127.0.0.1:${settings.port} (access key S3RVER, secret S3RVER), data in ${settings.directory}`);
    this.log.notice(`Offline S3: buckets ${buckets.join(', ')}`);
    for (const s of this.subs) {
      this.log.notice(`Offline S3: s3://${s.bucket}/${s.prefix}*${s.suffix} → ${s.functionKey}`);
    }
  }

  stop() {
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  }

  /** Sends one s3rver event to every function subscribed to it. */
  deliver(event) {
    for (const record of (event && event.Records) || []) {
      const bucket = record.s3 && record.s3.bucket && record.s3.bucket.name;
      const key = record.s3 && record.s3.object && record.s3.object.key;
      if (typeof bucket !== 'string' || typeof key !== 'string') continue;
      const targets = this.subs.filter(
        (s) => s.bucket === bucket && s.patterns.some((p) => p.test(record.eventName)) && key.startsWith(s.prefix) && key.endsWith(s.suffix),
      );
      if (targets.length === 0) continue;
      const delivered = {
        Records: [
          {
            ...record,
            s3: {
              ...record.s3,
              bucket: { ...record.s3.bucket, arn: `arn:aws:s3:::${bucket}` },
              // S3 URL-encodes the key in notifications (spaces as "+", "/" kept).
              object: { ...record.s3.object, key: encodeURIComponent(key).replace(/%2F/g, '/').replace(/%20/g, '+') },
            },
          },
        ],
      };
      for (const target of targets) void this.invoke(target, delivered, `s3://${bucket}/${key}`);
    }
  }

  async invoke(target, event, what) {
    const offline = { ...(this.serverless.service.custom && this.serverless.service.custom['serverless-offline']), ...this.options };
    const host = offline.host || 'localhost';
    const port = offline.lambdaPort || 3002;
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/2015-03-31/functions/${encodeURIComponent(target.functionName)}/invocations`;
    try {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-amz-invocation-type': 'RequestResponse' }, body: JSON.stringify(event) });
      const body = await res.text();
      if (res.status !== 200 || res.headers.get('x-amz-function-error')) {
        this.log.error(`Offline S3: ${target.functionKey} failed on ${what} (HTTP ${res.status}): ${body.slice(0, 500)}`);
      } else {
        this.log.notice(`Offline S3: ${target.functionKey} ← ${what}`);
      }
    } catch (err) {
      this.log.error(`Offline S3: cannot invoke ${target.functionKey} for ${what} at ${url}: ${err && err.message}`);
    }
  }
}

module.exports = OfflineS3Events;
