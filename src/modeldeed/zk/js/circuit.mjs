// The zero-knowledge statement of modeldeed's watermark (Adi et al. 2018, Appendix A, PVerify step 4),
// as an o1js ZkProgram over the Pasta field Fp. docs/zk.md states the relation in words; this file is it.
//
// Public (the verifier computes every value itself, from MODEL and the verification key): the key's id and the
// quantized model's digest (two 128-bit halves each), the threshold t of this proof, the chunk number, the
// challenge seed c, per layer l the Freivalds vector v_l = Σ_j r_l^j W_l[j, :] and scalar β_l = Σ_j r_l^j B_l[j]
// with r_l = Poseidon(c, l), and per slot an "active" flag and the Poseidon commitment of one hidden trigger.
// Secret: a salt, and per slot the trigger's pixel bits, its commitment nonce and label, and the forward pass the
// prover claims for it (sign bit and magnitude of every hidden pre-activation, and the logits).
// Statement: every active slot's commitment opens to its bits, nonce and label; at least t slots are counted,
// only active slots count, and a counted slot's logit for its label is strictly above every other logit;
// c is the Poseidon hash of the salt and every claim (so the challenge is fixed only after the claims are), and
// every claimed layer passes Freivalds' test: Σ_j r_l^j z_j = v_l · a + β_l. The weights never enter the circuit:
// the verifier folds them into v_l and β_l itself, which keeps the public input (which Pickles hashes, about six
// rows per value) to a few hundred values.
//
// Integers are field elements; negative numbers are p - |x|. The verifier refuses models whose values could
// reach 2^62 (modeldeed/zk/quantize.py), so every "x in [0, 2^64)" check below decides the sign of x.

import { Field, Gadgets, Poseidon, Provable, ZkProgram } from 'o1js';

export const TRIGGER_PREFIX = 'modeldeed/zk/trigger/v1';
export const CHALLENGE_PREFIX = 'modeldeed/zk/freivalds/v1';
export const BITS_PER_FIELD = 248;
export const INPUT_LEVEL = 255n; // a pixel bit b stands for the quantized input value 255 * b
export const MAGNITUDES_PER_FIELD = 3; // 64-bit magnitudes packed into one field for the challenge hash
export const HEADER = ['key_hi', 'key_lo', 'model_hi', 'model_lo', 'threshold', 'chunk', 'challenge'];

/** Where every public and private value sits, for a model of layer widths `dims` and `slots` triggers. */
export function layout(dims, slots) {
  if (!Array.isArray(dims) || dims.length < 2 || dims.some((d) => !Number.isInteger(d) || d < 1)) {
    throw Error(`dims must be at least two positive integers, got ${JSON.stringify(dims)}`);
  }
  if (!Number.isInteger(slots) || slots < 1) throw Error(`slots must be a positive integer, got ${slots}`);
  const layers = dims.length - 1;
  const inputs = dims[0];
  const classes = dims[layers];
  const hidden = dims.slice(1, layers);
  let freivalds = 0;
  for (let l = 1; l <= layers; l++) freivalds += dims[l - 1] + 1;
  const perSlot = inputs + 2 + classes + 2 * hidden.reduce((a, b) => a + b, 0) + classes + 1;
  return {
    dims, slots, layers, inputs, classes, hidden, freivalds, perSlot,
    publicSize: HEADER.length + freivalds + 2 * slots,
    privateSize: 1 + slots * perSlot,
  };
}

function pack(bits, width) {
  const fields = [];
  for (let start = 0; start < bits.length; start += width) {
    let acc = Field(0);
    bits.slice(start, start + width).forEach((b, i) => { acc = acc.add(b.mul(1n << BigInt(i))); });
    fields.push(acc.seal());
  }
  return fields;
}

/** Σ xs[i]·ys[i], one row per term: a multiplication and an addition share a double generic gate. */
function dot(xs, ys) {
  let acc = xs[0].mul(ys[0]);
  for (let i = 1; i < xs.length; i++) acc = acc.add(xs[i].mul(ys[i])).seal();
  return acc;
}

/** The challenge of layer l, from the seed: r_l = Poseidon(c, l). */
export function layerChallenge(seed, l) {
  return Poseidon.hash([seed, Field(l)]);
}

function powers(x, count) {
  const out = [Field(1)];
  for (let i = 1; i < count; i++) out.push(out[i - 1].mul(x));
  return out;
}

function readSlot(lay, priv, s) {
  let q = 1 + s * lay.perSlot;
  const take = (n) => { const out = priv.slice(q, q + n); q += n; return out; };
  const bits = take(lay.inputs);
  const [nonce, label] = take(2);
  const onehot = take(lay.classes);
  const hidden = lay.hidden.map((width) => ({ signs: take(width), magnitudes: take(width) }));
  const logits = take(lay.classes);
  const [counted] = take(1);
  return { bits, nonce, label, onehot, hidden, logits, counted };
}

/** The circuit body: (public fields, private fields) -> nothing; every check is an assertion. */
export function statement(lay) {
  return function (pub, priv) {
    const header = pub.slice(0, HEADER.length);
    const threshold = header[4];
    const seed = header[6];
    let o = HEADER.length;
    const V = [null];
    const beta = [null];
    for (let l = 1; l <= lay.layers; l++) {
      V.push(pub.slice(o, o + lay.dims[l - 1]));
      beta.push(pub[o + lay.dims[l - 1]]);
      o += lay.dims[l - 1] + 1;
    }
    const active = [];
    const commitment = [];
    for (let s = 0; s < lay.slots; s++) { active.push(pub[o]); commitment.push(pub[o + 1]); o += 2; }

    const salt = priv[0];
    const transcript = [...header.slice(0, 6), salt];
    const slots = [];
    let count = Field(0);
    for (let s = 0; s < lay.slots; s++) {
      const slot = readSlot(lay, priv, s);
      active[s].assertBool();
      // The commitment opens: Poseidon(prefix; nonce, label, number of bits, packed bits).
      slot.bits.forEach((b) => b.assertBool());
      const packed = pack(slot.bits, BITS_PER_FIELD);
      const opened = Poseidon.hashWithPrefix(TRIGGER_PREFIX, [slot.nonce, slot.label, Field(lay.inputs), ...packed]);
      active[s].mul(opened.sub(commitment[s])).assertEquals(Field(0));
      // The label is one class: a one-hot vector that sums to 1 and points at it.
      slot.onehot.forEach((b) => b.assertBool());
      slot.onehot.reduce((a, b) => a.add(b), Field(0)).assertEquals(Field(1));
      slot.onehot.reduce((a, b, k) => a.add(b.mul(k)), Field(0)).assertEquals(slot.label);
      // Hidden layers: pre-activation z = b ? m : -m - 1 with m in [0, 2^64); ReLU(z) = b·m.
      slot.pre = [null];
      slot.post = [slot.bits];
      for (const layer of slot.hidden) {
        const z = [];
        const a = [];
        layer.signs.forEach((b, j) => {
          const m = layer.magnitudes[j];
          b.assertBool();
          Gadgets.rangeCheck64(m);
          const relu = b.mul(m).seal();
          a.push(relu);
          z.push(relu.mul(2).add(b).sub(m).sub(1).seal());
        });
        slot.pre.push(z);
        slot.post.push(a);
      }
      slot.pre.push(slot.logits);
      // Counted only if active, and then the label's logit is strictly the largest:
      // z_y - z_k - 1 + [k = y] >= 0 for every k.
      slot.counted.assertBool();
      slot.counted.mul(Field(1).sub(active[s])).assertEquals(Field(0));
      const chosen = dot(slot.onehot, slot.logits);
      slot.logits.forEach((z, k) => {
        const margin = chosen.sub(z).sub(1).add(slot.onehot[k]).seal();
        Gadgets.rangeCheck64(slot.counted.mul(margin).seal());
      });
      count = count.add(slot.counted);
      // What the challenge must come after: the bits and every claimed value.
      transcript.push(...packed);
      for (const layer of slot.hidden) {
        transcript.push(...pack(layer.signs, BITS_PER_FIELD));
        for (let j = 0; j < layer.magnitudes.length; j += MAGNITUDES_PER_FIELD) {
          let acc = Field(0);
          layer.magnitudes.slice(j, j + MAGNITUDES_PER_FIELD).forEach((m, i) => {
            acc = acc.add(m.mul(1n << BigInt(64 * i)));
          });
          transcript.push(acc.seal());
        }
      }
      transcript.push(...slot.logits);
      slots.push(slot);
    }
    Gadgets.rangeCheck64(count.sub(threshold).seal());

    // The seed is the hash of the salt and every claim; the verifier derived v and β from it and the weights.
    Poseidon.hashWithPrefix(CHALLENGE_PREFIX, transcript).assertEquals(seed);
    // Freivalds: for layer l, Σ_j r^j z_j = Σ_i v_i a_i + β. A wrong z makes the difference a nonzero polynomial
    // of degree < width in r, zero with probability < width/p; r is fixed only after every z is.
    for (let l = 1; l <= lay.layers; l++) {
      const r = powers(layerChallenge(seed, l), lay.dims[l]);
      for (const slot of slots) {
        const lhs = dot(r, slot.pre[l]);
        let rhs = dot(V[l], slot.post[l - 1]);
        if (l === 1) rhs = rhs.mul(INPUT_LEVEL);
        lhs.assertEquals(rhs.add(beta[l]));
      }
    }
  };
}

/** The ZkProgram for one architecture and slot count; its name keys o1js's own cache entries. */
export function program(dims, slots) {
  const lay = layout(dims, slots);
  const body = statement(lay);
  const zk = ZkProgram({
    name: `modeldeed-watermark-mlp-${dims.join('-')}-s${slots}`,
    publicInput: Provable.Array(Field, lay.publicSize),
    methods: {
      prove: {
        privateInputs: [Provable.Array(Field, lay.privateSize)],
        async method(pub, priv) {
          body(pub, priv);
        },
      },
    },
  });
  return { zk, lay, body };
}
