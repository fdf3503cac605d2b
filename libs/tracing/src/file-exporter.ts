// A span exporter that appends OTLP/JSON lines to a file (the OpenTelemetry "file
// exporter" format): how integration tests collect spans and operators load Jaeger UI offline.
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { toExportTraceRequest } from './otlp-json';

/**
 * Writes each export call as one line: an ExportTraceServiceRequest in OTLP/JSON.
 *
 * Writes are synchronous and go out in a single write(2) on a file opened with
 * O_APPEND. So a span is in the file as soon as export() returns (a SIGKILL a moment
 * later loses nothing that was exported), and several processes may append to the
 * same file without tearing each other's lines.
 */
export class FileSpanExporter implements SpanExporter {
  readonly path: string;
  private fd: number | undefined;

  /** Opens (and creates, with its directory) the file now, so a bad path fails at start-up. */
  constructor(path: string) {
    this.path = path;
    mkdirSync(dirname(path), { recursive: true });
    this.fd = openSync(path, 'a');
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    if (this.fd === undefined) {
      resultCallback({ code: ExportResultCode.FAILED, error: new Error(`span file ${this.path} is closed: export after shutdown`) });
      return;
    }
    if (spans.length === 0) {
      resultCallback({ code: ExportResultCode.SUCCESS });
      return;
    }
    try {
      writeWhole(this.fd, Buffer.from(`${JSON.stringify(toExportTraceRequest(spans))}\n`, 'utf8'));
      resultCallback({ code: ExportResultCode.SUCCESS });
    } catch (err) {
      resultCallback({ code: ExportResultCode.FAILED, error: err instanceof Error ? err : new Error(String(err)) });
    }
  }

  /** Nothing is buffered here: every export was written before it returned. */
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    if (this.fd !== undefined) {
      closeSync(this.fd);
      this.fd = undefined;
    }
    return Promise.resolve();
  }
}

// A regular file takes the whole buffer in one write(2) in practice; the loop only
// guards against a short write (a full disk reports an error on the next call).
function writeWhole(fd: number, bytes: Buffer): void {
  let offset = 0;
  while (offset < bytes.length) {
    offset += writeSync(fd, bytes, offset, bytes.length - offset);
  }
}
