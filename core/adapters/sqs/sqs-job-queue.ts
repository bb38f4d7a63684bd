import type { SendMessageBatchCommand as SendBatch, SQSClient } from '@aws-sdk/client-sqs';
import type { JobQueue } from '../../contracts/job-queue.js';
import { StorageError, ValidationError } from '../../errors.js';

export interface SqsJobQueueOptions {
  /** The queue's URL (`https://sqs.<region>.amazonaws.com/<account>/<name>`). */
  queueUrl: string;
  /** Default: the region in the queue URL, else `AWS_REGION`. */
  region?: string;
  /** Another SQS-compatible endpoint (ElasticMQ, LocalStack, a test server). Default: AWS's. */
  endpoint?: string;
}

/** SQS takes at most 10 messages per SendMessageBatch. */
const BATCH = 10;
/** Entries SQS refused as a throttle or a server error are sent again, this many times at most. */
const RESENDS = 3;

/**
 * A job queue on Amazon SQS (or a compatible server) through `@aws-sdk/client-sqs`: messages go
 * out in SendMessageBatch calls of ten; the entries a batch fails on for a reason that may pass
 * (SQS says `SenderFault: false`) are sent again, a bounded number of times. The SDK is loaded on
 * first use, so a function that never fans out never loads it; the client is then reused by every
 * warm invocation.
 */
export class SqsJobQueue implements JobQueue {
  readonly name = 'sqs';
  readonly #options: SqsJobQueueOptions;
  #client: Promise<{ client: SQSClient; SendMessageBatchCommand: typeof SendBatch }> | undefined;

  constructor(options: SqsJobQueueOptions) {
    if (!/^https?:\/\/[^/]+\/.+/.test(options.queueUrl)) throw new ValidationError(`The job queue URL must be an SQS queue URL; got ${JSON.stringify(options.queueUrl).slice(0, 200)}`, { path: 'queueUrl' });
    this.#options = options;
  }

  async send(bodies: readonly string[], options: { delaySeconds?: number } = {}): Promise<void> {
    const delay = options.delaySeconds ?? 0;
    if (!Number.isInteger(delay) || delay < 0 || delay > 900) throw new ValidationError('delaySeconds must be a whole number from 0 to 900', { path: 'delaySeconds' });
    const { client, SendMessageBatchCommand } = await this.#sdk();
    for (let i = 0; i < bodies.length; i += BATCH) {
      let entries = bodies.slice(i, i + BATCH).map((body, n) => ({ Id: String(n), MessageBody: body, ...(delay > 0 ? { DelaySeconds: delay } : {}) }));
      for (let attempt = 0; ; attempt++) {
        let failed;
        try {
          failed = (await client.send(new SendMessageBatchCommand({ QueueUrl: this.#options.queueUrl, Entries: entries }))).Failed ?? [];
        } catch (err) {
          throw new StorageError('sqs', 'send', err, `SQS SendMessageBatch to ${this.#options.queueUrl} failed: ${(err as { name?: string }).name ?? 'network error'}`);
        }
        if (failed.length === 0) break;
        const retryable = failed.every((f) => f.SenderFault === false);
        if (!retryable || attempt >= RESENDS) {
          throw new StorageError('sqs', 'send', undefined, `SQS refused ${failed.length} of ${entries.length} messages to ${this.#options.queueUrl}: ${failed.map((f) => f.Code).join(', ')}`);
        }
        const again = new Set(failed.map((f) => f.Id));
        entries = entries.filter((e) => again.has(e.Id));
      }
    }
  }

  async close(): Promise<void> {
    const held = this.#client;
    this.#client = undefined;
    if (held) (await held.catch(() => null))?.client.destroy();
  }

  #sdk() {
    this.#client ??= import('@aws-sdk/client-sqs').then(({ SQSClient, SendMessageBatchCommand }) => {
      const region = this.#options.region ?? /sqs[.-]([a-z0-9-]+)\.amazonaws\.com/.exec(this.#options.queueUrl)?.[1] ?? process.env.AWS_REGION ?? 'us-east-1';
      return { client: new SQSClient({ region, ...(this.#options.endpoint ? { endpoint: this.#options.endpoint } : {}), maxAttempts: 3 }), SendMessageBatchCommand };
    });
    return this.#client;
  }
}
