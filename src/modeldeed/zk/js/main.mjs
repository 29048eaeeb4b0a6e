// The one entry point Python runs: `node main.mjs COMMAND CACHE_DIR`, a JSON request on stdin, one JSON
// answer on stdout. Python validates every value before it gets here (decimal field elements, bounded sizes,
// a cache directory it made); this file only computes. Exit 0 with {"ok": true, ...}, or exit 3 with
// {"ok": false, "error": "..."} for a failure it understood (e.g. an unsatisfied constraint).

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Cache, Field, Poseidon, Provable, verify } from 'o1js';
import { CHALLENGE_PREFIX, TRIGGER_PREFIX, layerChallenge, layout, program, statement } from './circuit.mjs';

// o1js reads the reference strings (SRS) and Lagrange bases from a cache only while compiling; a fresh verifier
// process would recompute the wrap proof's Lagrange basis (about 20 s of CPU) on every run. These internal modules
// of the pinned o1js version let the compile step store that basis in the circuit's cache directory and the
// verifier load it from there, read-only. Only speed depends on them: a missing basis is recomputed.
const o1js = new URL('.', import.meta.resolve('o1js'));
const internal = async (path) => import(new URL(path, o1js).href);
const { setSrsCache } = await internal('./bindings/crypto/cache.js');

async function loadWrapBasis(cacheDir, logSize) {
  const srsFile = readdirSync(cacheDir).find((f) => /^srs-fq-[0-9]+$/.test(f));
  const size = srsFile ? Number(srsFile.slice('srs-fq-'.length)) : 1 << 15;
  const bindings = await internal('./bindings.js');
  const { getRustConversion } = await internal('./bindings/crypto/bindings.js');
  const { srs } = await internal('./bindings/crypto/bindings/srs.js');
  await bindings.initializeBindings();
  const fq = srs(bindings.wasm, getRustConversion(bindings.wasm)).fq;
  await bindings.withThreadPool(async () => fq.addLagrangeBasis(fq.create(size), logSize));
}

function wrapDomainLog(cacheDir) {
  const name = readdirSync(cacheDir).find((f) => f.startsWith('wrap-vk-') && !f.endsWith('.header'));
  const log = JSON.parse(readFileSync(join(cacheDir, name), 'utf8')).index.domain.log_size_of_group;
  if (!Number.isInteger(log) || log < 8 || log > 20) throw Error(`unexpected wrap domain 2^${log}`);
  return log;
}

function fields(values, what) {
  if (!Array.isArray(values)) throw Error(`${what} must be a list`);
  return values.map((v) => {
    if (typeof v !== 'string' || !/^(0|[1-9][0-9]{0,76})$/.test(v)) throw Error(`${what} holds a non-decimal value`);
    const x = BigInt(v);
    if (x >= Field.ORDER) throw Error(`${what} holds a value outside the field`);
    return Field(x);
  });
}

function readOnly(cacheDir) {
  return { ...Cache.FileSystem(cacheDir), canWrite: false };
}

const commands = {
  // Poseidon commitments of triggers, out of circuit: each input is [nonce, label, bit count, packed bits...].
  async commit(request) {
    return { hashes: request.inputs.map((xs, i) => Poseidon.hashWithPrefix(TRIGGER_PREFIX, fields(xs, `input ${i}`)).toString()) };
  },
  // Freivalds challenges: the seed c = Poseidon(prefix; transcript) when a transcript is given (the prover), or the
  // seed as given (the verifier, from the proof file), and r_l = Poseidon(c, l) for every layer.
  async challenge(request) {
    if (!Number.isInteger(request.layers) || request.layers < 1 || request.layers > 16) throw Error('bad layer count');
    const items = request.items.map((item, i) => {
      const seed = item.transcript !== undefined
        ? Poseidon.hashWithPrefix(CHALLENGE_PREFIX, fields(item.transcript, `transcript ${i}`))
        : fields([item.seed], `seed ${i}`)[0];
      const rhos = [];
      for (let l = 1; l <= request.layers; l++) rhos.push(layerChallenge(seed, l).toString());
      return { seed: seed.toString(), rhos };
    });
    return { items };
  },
  async layout(request) {
    return { layout: layout(request.dims, request.slots) };
  },
  async rows(request) {
    const { zk } = program(request.dims, request.slots);
    const methods = await zk.analyzeMethods();
    return { rows: methods.prove.rows, gates: methods.prove.summary() };
  },
  // Run the statement on concrete values and check every constraint, without keys or a proof: seconds instead
  // of minutes, so tests can try many dishonest witnesses. A violated constraint answers {holds: false}.
  async check(request) {
    const lay = layout(request.dims, request.slots);
    const body = statement(lay);
    const results = [];
    for (const [i, c] of request.cases.entries()) {
      const pub = fields(c.public, `public input ${i}`);
      const priv = fields(c.private, `private input ${i}`);
      if (pub.length !== lay.publicSize || priv.length !== lay.privateSize) {
        throw Error(`expected ${lay.publicSize} public and ${lay.privateSize} private values, got ${pub.length} and ${priv.length}`);
      }
      try {
        await Provable.runAndCheck(() => {
          const w = (xs) => xs.map((x) => Provable.witness(Field, () => x));
          body(w(pub), w(priv));
        });
        results.push({ holds: true });
      } catch (error) {
        results.push({ holds: false, reason: String(error?.message ?? error).split('\n')[0].slice(0, 300) });
      }
    }
    return { results };
  },
  async compile(request, cacheDir) {
    const { zk } = program(request.dims, request.slots);
    const { verificationKey } = await zk.compile({ cache: Cache.FileSystem(cacheDir) });
    const methods = await zk.analyzeMethods();
    const wrapLog = wrapDomainLog(cacheDir);
    setSrsCache(Cache.FileSystem(cacheDir));
    await loadWrapBasis(cacheDir, wrapLog); // computed once here and written to the cache
    return {
      vk: verificationKey.data,
      vk_hash: verificationKey.hash.toString(),
      rows: methods.prove.rows,
      wrap_domain_log: wrapLog,
    };
  },
  async prove(request, cacheDir) {
    const { zk, lay } = program(request.dims, request.slots);
    const pub = fields(request.public, 'public input');
    const priv = fields(request.private, 'private input');
    if (pub.length !== lay.publicSize || priv.length !== lay.privateSize) {
      throw Error(`expected ${lay.publicSize} public and ${lay.privateSize} private values, got ${pub.length} and ${priv.length}`);
    }
    const { verificationKey } = await zk.compile({ cache: readOnly(cacheDir) });
    if (request.vk_hash && verificationKey.hash.toString() !== request.vk_hash) {
      throw Error('the compiled circuit does not match the cached verification key');
    }
    const started = Date.now();
    const { proof } = await zk.prove(pub, priv);
    return { proof: proof.toJSON().proof, prove_seconds: (Date.now() - started) / 1000 };
  },
  // Verification needs no compilation: the verification key comes from Python's cache, the public input from
  // Python's own derivation, and only the proof string from the prover.
  // Several (public input, proof) cases against one key, so the reference strings are loaded once.
  async verify(request, cacheDir) {
    const started = Date.now();
    setSrsCache(readOnly(cacheDir));
    if (!Number.isInteger(request.wrap_domain_log)) throw Error('wrap_domain_log must be an integer');
    await loadWrapBasis(cacheDir, request.wrap_domain_log);
    const loaded = Date.now();
    const results = [];
    for (const [i, c] of request.cases.entries()) {
      const publicInput = fields(c.public, `public input ${i}`).map(String);
      const proof = { publicInput, publicOutput: [], maxProofsVerified: 0, proof: c.proof };
      try {
        results.push({ valid: (await verify(proof, request.vk)) === true });
      } catch (error) {
        const why = String(error?.message ?? error).split('\n')[0].slice(0, 200);
        results.push({ valid: false, reason: `the proof does not decode (${why})` });
      }
    }
    const seconds = { load: (loaded - started) / 1000, verify: (Date.now() - loaded) / 1000 };
    return { results, seconds, since_start: process.uptime() };
  },
};

async function main() {
  const [command, cacheDir] = process.argv.slice(2);
  if (!Object.hasOwn(commands, command)) throw Error(`unknown command ${command}`);
  const request = JSON.parse(readFileSync(0, 'utf8'));
  const answer = await commands[command](request, cacheDir);
  process.stdout.write(JSON.stringify({ ok: true, ...answer }) + '\n');
}

main().then(
  () => process.exit(0),
  (error) => {
    const message = String(error?.message ?? error).split('\n').slice(0, 3).join(' ').slice(0, 600);
    process.stdout.write(JSON.stringify({ ok: false, error: message }) + '\n');
    process.exit(3);
  },
);
