// A compute plugin in JavaScript (world `compute-plugin` of `sop:plugin@0.1.0`).
//
// Input (JSON): {"source": S, "target": T, "key": K}. Reads every item of store S with a
// range cursor, in batches, counts the items and sums the byte lengths of their values,
// writes {"count":N,"bytes":B} under key K in store T (inside the caller's transaction) and
// returns the same JSON. Any error is returned as the error string.
//
// Build: plugins/polyglot/build.sh (componentize-js -n compute-plugin).

import { open } from 'sop:plugin/storage@0.1.0';

const BATCH = 512;
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

// Errors of imported functions arrive as thrown values whose `payload` is the WIT
// `plugin-error` variant ({tag, val}); anything else is a bug of ours.
function describe(e) {
  const p = e?.payload;
  if (p && typeof p === 'object' && 'tag' in p) return `${p.tag}: ${p.val}`;
  return String(e?.message ?? e);
}

// Drop resource handles now rather than at garbage collection. The generated bindings key
// the drop method like this (StarlingMonkey may lack Symbol.dispose).
const DISPOSE = Symbol.dispose ?? Symbol.for('dispose');
function dispose(r) {
  r[DISPOSE]();
}

function field(input, name) {
  const v = input[name];
  if (typeof v !== 'string') throw `input needs a string field ${JSON.stringify(name)}`;
  return v;
}

function aggregate(source, target, key) {
  let count = 0;
  let bytes = 0;
  const src = open(source);
  try {
    const cursor = src.range(undefined, undefined, false);
    try {
      for (;;) {
        // Flat buffers: item i is data[ends[i-1]..ends[i]], with ends[-1] = 0.
        const { values } = cursor.nextBatch(BATCH);
        const n = values.ends.length;
        if (n === 0) break;
        count += n;
        bytes += values.ends[n - 1]; // the sum of the n value lengths
      }
    } finally {
      dispose(cursor);
    }
  } finally {
    dispose(src);
  }
  const out = JSON.stringify({ count, bytes });
  const dst = open(target);
  try {
    dst.put(encoder.encode(key), encoder.encode(out));
  } finally {
    dispose(dst);
  }
  return encoder.encode(out);
}

export const compute = {
  run(input) {
    let args;
    try {
      args = JSON.parse(decoder.decode(input));
    } catch (e) {
      throw `input is not JSON: ${describe(e)}`;
    }
    if (args === null || typeof args !== 'object') throw 'input must be a JSON object';
    const [source, target, key] = [field(args, 'source'), field(args, 'target'), field(args, 'key')];
    try {
      return aggregate(source, target, key);
    } catch (e) {
      throw describe(e);
    }
  },
};
