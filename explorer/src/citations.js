// A citation shown where it comes from: the quote highlighted inside its source's text (the
// paragraphs around it, or the whole text on request). Sources without stored text — UCDP GED
// events cite the dataset, quoting UCDP's own source line — show the quote as that line.

import { cached, report } from "./api.js";
import { clear, h } from "./dom.js";
import { dateSpan, label } from "./words.js";

const CONTEXT = 160; // characters of text wanted on each side of a quote, whole paragraphs

/** Where `quote` is in `text`: exactly, else ignoring differences in white space. */
export function locate(text, quote) {
  const at = text.indexOf(quote);
  if (at >= 0) return [at, at + quote.length];
  const words = quote.trim().split(/\s+/).map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  if (!words.length) return null;
  const match = new RegExp(words.join("\\s+")).exec(text);
  return match ? [match.index, match.index + match[0].length] : null;
}

function paragraphStart(text, from) {
  let at = from;
  while (at > 0) {
    const nl = text.lastIndexOf("\n", at - 1);
    if (nl < 0) return 0;
    at = nl + 1;
    if (from - at >= CONTEXT) return at;
    at = nl;
  }
  return 0;
}

function paragraphEnd(text, to) {
  let at = to;
  for (;;) {
    const nl = text.indexOf("\n", at);
    if (nl < 0) return text.length;
    if (nl - to >= CONTEXT) return nl;
    at = nl + 1;
  }
}

function highlighted(text, [start, end], whole) {
  const from = whole ? 0 : paragraphStart(text, start);
  const to = whole ? text.length : paragraphEnd(text, end);
  return [
    from > 0 ? "… " : null,
    text.slice(from, start).replace(/^\n+/, ""),
    h("mark", {}, text.slice(start, end)),
    text.slice(end, to).replace(/\n+$/, ""),
    to < text.length ? " …" : null,
  ];
}

function sourceCaption(source) {
  const parts = [source.publisher, source.published_on ? dateSpan({ start: source.published_on, end: source.published_on, precision: "day" }) : null, label(source.kind)];
  return h(
    "figcaption",
    {},
    h("span", { class: "source-title" }, source.title),
    " — ",
    parts.filter(Boolean).join(", "),
    source.url ? [" ", h("a", { href: source.url, rel: "noreferrer noopener", target: "_blank" }, "original")] : null,
  );
}

/** A `<figure>` filled in when the source arrives; resolves when it is complete. */
export function citationBlock(citation) {
  const figure = h("figure", { class: "citation", dataset: { source: citation.source_id, state: "loading" } });
  figure.append(h("blockquote", { class: "line" }, h("mark", {}, citation.quote)));
  const done = cached(`/v1/sources/${citation.source_id}`)
    .then((source) => {
      clear(figure);
      figure.append(sourceCaption(source));
      if (source.text == null) {
        const what = source.kind === "dataset" ? "The dataset's source line for this record" : "Quote (the source's text is not stored)";
        figure.append(h("p", { class: "line-label" }, what), h("blockquote", { class: "line" }, h("mark", {}, citation.quote)));
        figure.dataset.state = "line";
        return;
      }
      const range = locate(source.text, citation.quote);
      if (!range) {
        figure.append(
          h("p", { class: "line-label" }, "Quote (no longer found in the source's current text)"),
          h("blockquote", { class: "line" }, h("mark", {}, citation.quote)),
        );
        figure.dataset.state = "missing";
        return;
      }
      const body = h("blockquote", { class: "in-text" }, highlighted(source.text, range, false));
      const toggle = h("button", { type: "button", class: "link" }, "Show the whole text");
      let whole = false;
      toggle.addEventListener("click", () => {
        whole = !whole;
        clear(body).append(...highlighted(source.text, range, whole).filter((x) => x !== null));
        body.classList.toggle("whole", whole);
        toggle.textContent = whole ? "Show only the passage" : "Show the whole text";
        body.querySelector("mark").scrollIntoView({ block: "center" });
      });
      figure.append(body, toggle);
      figure.dataset.state = "in-text";
    })
    .catch((error) => {
      figure.dataset.state = "error";
      report(error);
    });
  return { element: figure, done };
}

export function citationList(citations) {
  const blocks = citations.map(citationBlock);
  return { element: h("div", { class: "citations" }, blocks.map((b) => b.element)), done: Promise.all(blocks.map((b) => b.done)) };
}
