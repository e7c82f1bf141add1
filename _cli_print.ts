// What cli.ts prints: events as readable blocks (with every control
// character escaped, so that a published value cannot forge lines or
// terminal sequences), gap lines, and the writers of stdout and stderr.

import type { Event, Gap } from "./types.ts";

// Control, format, unassigned and private-use characters, and the line
// and paragraph separators.
const UNPRINTABLE = /[\p{C}\p{Zl}\p{Zp}]/gu;

/**
 * `text` with each unprintable character as `\uXXXX` (an astral one as
 * its two UTF-16 escapes), so that JSON text stays valid JSON.
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (char) => {
    let escaped = "";
    for (let i = 0; i < char.length; i++) {
      escaped += `\\u${char.charCodeAt(i).toString(16).padStart(4, "0")}`;
    }
    return escaped;
  });
}

/** An event as a few readable lines, its position among them if given. */
export function pretty(event: Event, position: string | undefined): string {
  const { timestamp, topic, type, event_id, source, correlation_id } = event
    .toDict();
  const lines = [
    `${timestamp}  ${topic}  ${type}  ${event_id}`,
    `  payload      ${JSON.stringify(event.payload)}`,
  ];
  if (source !== null) lines.push(`  source       ${source}`);
  if (correlation_id !== null) lines.push(`  correlation  ${correlation_id}`);
  if (Object.keys(event.metadata).length > 0) {
    lines.push(`  metadata     ${JSON.stringify(event.metadata)}`);
  }
  if (position !== undefined) lines.push(`  position     ${position}`);
  return lines.map(printable).join("\n");
}

/** A gap the bus reported, as one line for stderr. */
export function gapLine({ since, until, lost }: Gap): string {
  if (lost !== true) {
    return `events: gap from ${since.toISOString()} to ${until.toISOString()}: the connection was lost; events published then may have been missed`;
  }
  const span = since.getTime() === 0
    ? `before ${until.toISOString()}`
    : `from ${since.toISOString()} to ${until.toISOString()}`;
  return `events: gap ${span}: events the log no longer holds (trimmed by retention, or lost by the server) are lost for good`;
}

const encoder = new TextEncoder();

/** Writes a line to stdout; rejects with BrokenPipe once it is closed. */
export async function out(text: string): Promise<void> {
  const bytes = encoder.encode(`${text}\n`);
  for (let at = 0; at < bytes.length;) {
    at += await Deno.stdout.write(bytes.subarray(at));
  }
}

/**
 * Writes a line to stdout; a closed stdout (`| head -0`) is no failure:
 * the work is done, only its report has no reader.
 */
export async function report(text: string): Promise<void> {
  try {
    await out(text);
  } catch (error) {
    if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
  }
}

/**
 * Writes a line to stderr, synchronously: it is written even when the
 * process exits right after.
 */
export function err(text: string): void {
  const bytes = encoder.encode(`${text}\n`);
  for (let at = 0; at < bytes.length;) {
    at += Deno.stderr.writeSync(bytes.subarray(at));
  }
}
