// Records in plain words: estimates ("at least 23 killed"), date spans ("December 2023
// (inferred)"), places, enum values.

const MONTHS = [
  "January", "February", "March", "April", "May", "June",
  "July", "August", "September", "October", "November", "December",
];

export const number = (value) => Number(value).toLocaleString("en-US");

/** `{low, best, high}` as words: "at least 23" (low = best, no high), "more than 30" (low
 * only: the schema stores "more than 30" as low = 31), "about 40 (35–50)", "up to 12". */
export function estimate(e) {
  if (!e) return null;
  const { low, best, high } = e;
  if (low == null && best == null && high == null) return null;
  if (best != null) {
    if (low == null && high == null) return number(best);
    if (high == null) return low === best ? `at least ${number(best)}` : `${number(best)} (at least ${number(low)})`;
    if (low == null) return `${number(best)} (at most ${number(high)})`;
    if (low === best && best === high) return number(best);
    return `${number(best)} (${number(low)}–${number(high)})`;
  }
  if (low != null && high != null) return `between ${number(low)} and ${number(high)}`;
  if (low != null) return `more than ${number(low - 1)}`;
  return `up to ${number(high)}`;
}

/** The number used for sizes and colours: best, else the lower bound, else 0. */
export const bestOf = (e) => (e ? (e.best ?? e.low ?? 0) : 0);

const parse = (iso) => {
  const [y, m, d] = iso.split("-").map(Number);
  return { y, m, d };
};

function day({ y, m, d }) {
  return `${d} ${MONTHS[m - 1]} ${y}`;
}

/** A date span with its precision: "12 December 2023", "November 2022", "2021",
 * "week of 4 March 2019", "March 2017 – December 2023". */
export function dateSpan(span, { inferred = false } = {}) {
  if (!span) return null;
  const s = parse(span.start);
  const e = parse(span.end);
  let text;
  switch (span.precision) {
    case "day":
      text = span.start === span.end ? day(s) : `${day(s)} – ${day(e)}`;
      break;
    case "week":
      text = span.start === span.end ? day(s) : `between ${day(s)} and ${day(e)}`;
      break;
    case "month":
      text =
        s.y === e.y && s.m === e.m ? `${MONTHS[s.m - 1]} ${s.y}` : `${MONTHS[s.m - 1]} ${s.y} – ${MONTHS[e.m - 1]} ${e.y}`;
      break;
    default:
      text = s.y === e.y ? `${s.y}` : `${s.y} – ${e.y}`;
  }
  return inferred ? `${text} (inferred)` : text;
}

/** The design's convention: a date the curator inferred rather than read is stated as such in
 * the record's summary ("2023 is a curator's inference"). */
export const dateInferred = (record) => /\binferen(ce|ced)\b|\binferred\b/i.test(record.summary ?? "");

export const label = (value) => (value ? value.replaceAll("_", " ") : "");

export const PRECISION_WORDS = {
  exact: "exact coordinates",
  near: "near the place named",
  admin2: "district level",
  admin1: "province level",
  country: "country level",
};

export const TYPES = [
  "battle",
  "explosion_remote_violence",
  "violence_against_civilians",
  "riot",
  "protest",
  "strategic_development",
];
