/* mime_html - HTML work with libxml2: text rendering, reference rewriting,
 * and plain text made into HTML.
 *
 * HTML is parsed with libxml2's forgiving HTML parser and walked without
 * recursion (a hostile message may nest thousands of elements). Input
 * without <html>, <body> or a doctype is treated as a fragment: it is
 * parsed inside <html><body> and written back as the body's content only,
 * so a fragment stays a fragment. */
#include <libxml/HTMLparser.h>
#include <libxml/HTMLtree.h>
#include <limits.h>
#include <string.h>

#include "lib/xalloc.h"
#include "mime/mime_int.h"

#define PARSE_OPTIONS                                                                              \
    (HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET)

/* is_document - HTML has an <html> or <body> tag (open or close) or a doctype */
static bool is_document(const char *html)
{
    static const char *const marks[] = {"<html", "<body", "</html", "</body", "<!doctype"};
    for (const char *p = strchr(html, '<'); p != NULL; p = strchr(p + 1, '<'))
        for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
            if (g_ascii_strncasecmp(p, marks[i], strlen(marks[i])) == 0)
                return true;
    return false;
}

/* html_parse - the tree of HTML (NULL when libxml2 cannot read it);
 * *FRAGMENT_R tells whether it was wrapped as a fragment */
static htmlDocPtr html_parse(const char *html, bool *fragment_r)
{
    size_t len = strlen(html);
    *fragment_r = false;
    if (len > INT_MAX / 2)
        return NULL;
    if (is_document(html))
        return htmlReadMemory(html, (int)len, NULL, "UTF-8", PARSE_OPTIONS);
    char *wrapped = xasprintf("<html><body>%s</body></html>", html);
    htmlDocPtr doc = htmlReadMemory(wrapped, (int)strlen(wrapped), NULL, "UTF-8", PARSE_OPTIONS);
    free(wrapped);
    *fragment_r = true;
    return doc;
}

/* name_is - element N is named NAME (libxml2 lower-cases HTML names) */
static bool name_is(xmlNodePtr n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

/* html_walk - visit ROOT and everything under it in document order without
 * recursion: ENTER before a node's children (false skips them), LEAVE
 * (may be NULL) after them */
static void html_walk(xmlNodePtr root, bool (*enter)(xmlNodePtr, void *),
                      void (*leave)(xmlNodePtr, void *), void *ctx)
{
    xmlNodePtr n = root;
    while (n != NULL) {
        if (enter(n, ctx) && n->children != NULL) {
            n = n->children;
            continue;
        }
        for (;;) {
            if (leave != NULL)
                leave(n, ctx);
            if (n == root)
                return;
            if (n->next != NULL) {
                n = n->next;
                break;
            }
            n = n->parent;
        }
    }
}

/* ---- references ---- */

struct ref_walk {
    mime_ref_map_fn map;
    void *ctx;
    xmlNsPtr raw; /* when rewriting: marks the URL attributes to write as they are */
};

/* is_ref_attribute - NAME is one of the attributes holding a reference */
static bool is_ref_attribute(const xmlChar *name)
{
    return g_ascii_strcasecmp((const char *)name, "src") == 0 ||
           g_ascii_strcasecmp((const char *)name, "href") == 0 ||
           g_ascii_strcasecmp((const char *)name, "background") == 0;
}

/* ref_enter - pass each reference attribute of element N through the
 * map, and when rewriting set it to what the map returns. libxml2's HTML
 * writer percent-escapes href, src, action and <a name> values ("files[0]"
 * would become "files%5B0%5D"), except in attributes with a namespace: a
 * prefix-less one (W->raw, never declared in the document, so never
 * written) keeps every URL exactly as it was. */
static bool ref_enter(xmlNodePtr n, void *vw)
{
    struct ref_walk *w = vw;
    if (n->type != XML_ELEMENT_NODE)
        return true;
    for (xmlAttrPtr a = n->properties; a != NULL; a = a->next) {
        const char *name = (const char *)a->name;
        if (w->raw != NULL && a->ns == NULL &&
            (is_ref_attribute(a->name) || g_ascii_strcasecmp(name, "action") == 0 ||
             (g_ascii_strcasecmp(name, "name") == 0 && name_is(n, "a"))))
            a->ns = w->raw;
        if (!is_ref_attribute(a->name))
            continue;
        xmlChar *value = xmlNodeGetContent((xmlNodePtr)a);
        if (value == NULL)
            continue;
        const char *mapped = w->map(w->ctx, (const char *)value);
        if (mapped != NULL && w->raw != NULL)
            xmlSetNsProp(n, a->ns, a->name, (const xmlChar *)mapped);
        xmlFree(value);
    }
    return true;
}

/* body_of - the <body> element among ROOT's children, or NULL */
static xmlNodePtr body_of(xmlNodePtr root)
{
    for (xmlNodePtr n = root != NULL ? root->children : NULL; n != NULL; n = n->next)
        if (name_is(n, "body"))
            return n;
    return NULL;
}

/* write_doctype - the doctype of DOC, as the input had it */
static void write_doctype(xmlOutputBufferPtr ob, htmlDocPtr doc)
{
    xmlDtdPtr dtd = doc->intSubset;
    if (dtd == NULL || dtd->name == NULL)
        return;
    xmlOutputBufferWriteString(ob, "<!DOCTYPE ");
    xmlOutputBufferWriteString(ob, (const char *)dtd->name);
    if (dtd->ExternalID != NULL) {
        xmlOutputBufferWriteString(ob, " PUBLIC \"");
        xmlOutputBufferWriteString(ob, (const char *)dtd->ExternalID);
        xmlOutputBufferWriteString(ob, "\"");
    }
    if (dtd->SystemID != NULL) {
        xmlOutputBufferWriteString(ob, dtd->ExternalID != NULL ? " \"" : " SYSTEM \"");
        xmlOutputBufferWriteString(ob, (const char *)dtd->SystemID);
        xmlOutputBufferWriteString(ob, "\"");
    }
    xmlOutputBufferWriteString(ob, ">\n");
}

/* mime_html_rewrite_refs - HTML with its references mapped (see mime.h) */
char *mime_html_rewrite_refs(const char *html, mime_ref_map_fn map, void *ctx)
{
    bool fragment;
    htmlDocPtr doc = html_parse(html, &fragment);
    if (doc == NULL)
        return xstrdup(html);
    struct ref_walk w = {map, ctx, xmlNewNs(NULL, (const xmlChar *)"urn:x-mailbridge-raw", NULL)};
    xmlNodePtr root = xmlDocGetRootElement(doc);
    if (root != NULL)
        html_walk(root, ref_enter, NULL, &w);
    xmlOutputBufferPtr ob = xmlAllocOutputBuffer(NULL);
    if (fragment) {
        xmlNodePtr body = body_of(root);
        for (xmlNodePtr n = body != NULL ? body->children : NULL; n != NULL; n = n->next)
            htmlNodeDumpFormatOutput(ob, doc, n, "UTF-8", 0);
    } else {
        write_doctype(ob, doc);
        for (xmlNodePtr n = doc->children; n != NULL; n = n->next)
            if (n->type != XML_DTD_NODE)
                htmlNodeDumpFormatOutput(ob, doc, n, "UTF-8", 0);
    }
    xmlOutputBufferFlush(ob);
    char *out = xmemdup(xmlOutputBufferGetContent(ob), xmlOutputBufferGetSize(ob));
    xmlOutputBufferClose(ob);
    xmlFreeDoc(doc); /* attributes only point at W.raw: it is freed on its own */
    xmlFreeNs(w.raw);
    return out;
}

/* ---- HTML to text ---- */

struct text_walk {
    struct buf out;    /* capped at the caller's max_len */
    int pending;       /* line breaks owed before the next text (at most 2) */
    bool space;        /* a space is owed before the next text */
    bool full;         /* max_len reached: nothing more is written */
    unsigned pre;      /* depth inside <pre> */
    unsigned lists;    /* depth inside <ul> / <ol> */
    xmlNodePtr link;   /* the <a href> being rendered */
    size_t link_start; /* where its text starts in OUT */
};

/* elements whose content is not text */
static const char *const dropped[] = {"script", "style", "head", "title", "template"};
/* block elements: a paragraph break (2) or a line break (1) around them */
static const struct {
    const char *name;
    int breaks;
} blocks[] = {
    {"p", 2},        {"h1", 2},     {"h2", 2},      {"h3", 2},         {"h4", 2},
    {"h5", 2},       {"h6", 2},     {"table", 2},   {"blockquote", 2}, {"pre", 2},
    {"hr", 2},       {"dl", 2},     {"ul", 2},      {"ol", 2},         {"div", 1},
    {"li", 1},       {"tr", 1},     {"dt", 1},      {"dd", 1},         {"address", 1},
    {"article", 1},  {"aside", 1},  {"footer", 1},  {"header", 1},     {"nav", 1},
    {"section", 1},  {"main", 1},   {"figure", 1},  {"figcaption", 1}, {"form", 1},
    {"fieldset", 1}, {"center", 1}, {"caption", 1}, {"details", 1},    {"summary", 1},
};

/* block_breaks - the breaks element N asks for, 0 for an inline element */
static int block_breaks(const struct text_walk *t, xmlNodePtr n)
{
    for (size_t i = 0; i < sizeof(blocks) / sizeof(blocks[0]); i++)
        if (strcmp((const char *)n->name, blocks[i].name) == 0)
            return (name_is(n, "ul") || name_is(n, "ol")) && t->lists > 0 ? 1 : blocks[i].breaks;
    return 0;
}

/* put - append N bytes, stopping for good at max_len (cut on a character) */
static void put(struct text_walk *t, const char *s, size_t n)
{
    if (t->full || buf_append(&t->out, s, n))
        return;
    size_t room = t->out.limit - t->out.len;
    while (room > 0 && ((unsigned char)s[room] & 0xC0) == 0x80)
        room--;
    buf_append(&t->out, s, room);
    t->full = true;
}

/* trailing_breaks - how many line breaks end the output (up to 2) */
static int trailing_breaks(const struct text_walk *t)
{
    int k = 0;
    while (k < 2 && (size_t)k < t->out.len && t->out.data[t->out.len - 1 - (size_t)k] == '\n')
        k++;
    return k;
}

/* emit - text S (N bytes) after the breaks and space owed */
static void emit(struct text_walk *t, const char *s, size_t n)
{
    if (t->out.len > 0) {
        for (int k = trailing_breaks(t); k < t->pending; k++)
            put(t, "\n", 1);
        if (t->pending == 0 && t->space && t->out.data[t->out.len - 1] != '\n')
            put(t, " ", 1);
    }
    t->pending = 0;
    t->space = false;
    put(t, s, n);
}

/* emit_text - a text node: white space collapsed, except inside <pre> */
static void emit_text(struct text_walk *t, const char *s)
{
    if (t->pre > 0) {
        emit(t, s, strlen(s));
        return;
    }
    while (*s != '\0' && !t->full) {
        size_t ws = 0;
        for (;;) {
            if (strchr(" \t\n\r\f", s[ws]) != NULL && s[ws] != '\0')
                ws++;
            else if ((unsigned char)s[ws] == 0xC2 && (unsigned char)s[ws + 1] == 0xA0)
                ws += 2; /* no-break space */
            else
                break;
        }
        if (ws > 0) {
            t->space = true;
            s += ws;
            continue;
        }
        size_t run = 0;
        while (s[run] != '\0' && strchr(" \t\n\r\f", s[run]) == NULL &&
               !((unsigned char)s[run] == 0xC2 && (unsigned char)s[run + 1] == 0xA0))
            run++;
        emit(t, s, run);
        s += run;
    }
}

/* text_enter - what an element or text node starts */
static bool text_enter(xmlNodePtr n, void *vt)
{
    struct text_walk *t = vt;
    if (t->full)
        return false;
    if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
        if (n->content != NULL)
            emit_text(t, (const char *)n->content);
        return false;
    }
    if (n->type != XML_ELEMENT_NODE)
        return false;
    for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++)
        if (name_is(n, dropped[i]))
            return false;
    if (name_is(n, "br")) {
        emit(t, "\n", 1);
        return false;
    }
    int breaks = block_breaks(t, n);
    if (breaks > t->pending)
        t->pending = breaks;
    if (name_is(n, "ul") || name_is(n, "ol"))
        t->lists++;
    else if (name_is(n, "pre"))
        t->pre++;
    else if (name_is(n, "li"))
        for (unsigned k = 1; k < t->lists; k++)
            emit(t, "  ", 2);
    if (name_is(n, "li"))
        emit(t, "- ", 2);
    else if (name_is(n, "td") || name_is(n, "th"))
        t->space = true;
    else if (name_is(n, "a") && t->link == NULL && xmlHasProp(n, (const xmlChar *)"href")) {
        t->link = n;
        t->link_start = t->out.len;
    }
    return true;
}

/* link_target - what a link shows after its text: its URL unless that is
 * the text already, a fragment or a script; NULL for nothing */
static char *link_target(xmlNodePtr a, const char *text, size_t text_len)
{
    xmlChar *href = xmlGetProp(a, (const xmlChar *)"href");
    char *url = mime_utf8_trimmed((const char *)href);
    xmlFree(href);
    if (url == NULL)
        return NULL;
    const char *shown = g_ascii_strncasecmp(url, "mailto:", 7) == 0 ? url + 7 : url;
    if (text_len == 0 || url[0] == '#' || g_ascii_strncasecmp(url, "javascript:", 11) == 0 ||
        (strlen(url) == text_len && memcmp(url, text, text_len) == 0) ||
        (strlen(shown) == text_len && memcmp(shown, text, text_len) == 0)) {
        free(url);
        return NULL;
    }
    return url;
}

/* text_leave - what an element ends */
static void text_leave(xmlNodePtr n, void *vt)
{
    struct text_walk *t = vt;
    if (n->type != XML_ELEMENT_NODE || t->full)
        return;
    if (name_is(n, "ul") || name_is(n, "ol"))
        t->lists--;
    else if (name_is(n, "pre"))
        t->pre--;
    int breaks = block_breaks(t, n);
    if (breaks > t->pending)
        t->pending = breaks;
    if (n == t->link) {
        const char *text = t->out.data != NULL ? t->out.data + t->link_start : "";
        size_t len = t->out.len - t->link_start;
        while (len > 0 && strchr(" \n", *text) != NULL) {
            text++;
            len--;
        }
        char *url = link_target(n, text, len);
        if (url != NULL) {
            t->space = true;
            char *shown = xasprintf("(%s)", url);
            emit(t, shown, strlen(shown));
            free(shown);
            free(url);
        }
        t->link = NULL;
    }
}

/* render_text - the text of DOC, at most MAX_LEN bytes; caller owns it */
static char *render_text(htmlDocPtr doc, size_t max_len)
{
    struct text_walk t = {.pending = 0};
    buf_init(&t.out, max_len);
    xmlNodePtr root = xmlDocGetRootElement(doc);
    if (root != NULL)
        html_walk(root, text_enter, text_leave, &t);
    while (t.out.len > 0 && strchr(" \n", t.out.data[t.out.len - 1]) != NULL)
        t.out.data[--t.out.len] = '\0';
    return buf_steal(&t.out);
}

/* mime_html_to_text - readable text of HTML (see mime.h) */
char *mime_html_to_text(const char *html, size_t max_len)
{
    char *text = NULL;
    mime_html_scan(html, max_len, &text, NULL, NULL);
    return text;
}

/* mime_html_scan - one parse of HTML for its text and its references */
void mime_html_scan(const char *html, size_t max_len, char **text_r, mime_ref_map_fn fn, void *ctx)
{
    bool fragment;
    htmlDocPtr doc = html_parse(html, &fragment);
    if (text_r != NULL)
        *text_r = doc != NULL && max_len > 0 ? render_text(doc, max_len) : xstrdup("");
    if (doc == NULL)
        return;
    struct ref_walk w = {fn, ctx, NULL};
    xmlNodePtr root = xmlDocGetRootElement(doc);
    if (fn != NULL && root != NULL)
        html_walk(root, ref_enter, NULL, &w);
    xmlFreeDoc(doc);
}

/* ---- text to HTML ---- */

/* html_escape - the HTML for byte *P of a text (P[1] is looked at for CRLF)
 * after a space (AFTER_SPACE) or at a line start (LINE_START); NULL for a
 * byte that is copied as it is */
static const char *html_escape(const char *p, bool line_start, bool after_space)
{
    switch (*p) {
    case '&':
        return "&amp;";
    case '<':
        return "&lt;";
    case '>':
        return "&gt;";
    case '"':
        return "&quot;";
    case '\'':
        return "&#39;";
    case '\r':
        return p[1] == '\n' ? "" : "<br>\n";
    case '\n':
        return "<br>\n";
    case '\t':
        return "&nbsp;&nbsp;&nbsp;&nbsp;";
    case ' ':
        return line_start || after_space ? "&nbsp;" : " ";
    default:
        return NULL;
    }
}

/* text_html_pass - the HTML of TEXT written to OUT (NULL: only measured);
 * returns its length. Runs of spaces and leading spaces become &nbsp; so
 * the rendering keeps them. */
static size_t text_html_pass(const char *text, char *out)
{
    size_t n = 0;
    bool line_start = true, after_space = false;
    for (const char *p = text; *p != '\0'; p++) {
        const char *rep = html_escape(p, line_start, after_space);
        if (rep == NULL) {
            if (out != NULL)
                out[n] = *p;
            n++;
            line_start = after_space = false;
            continue;
        }
        size_t k = strlen(rep);
        if (out != NULL)
            memcpy(out + n, rep, k);
        n += k;
        line_start = *p == '\n' || (*p == '\r' && p[1] != '\n');
        after_space = *p == ' ' || *p == '\t';
    }
    return n;
}

/* mime_text_to_html - TEXT escaped into HTML, measured then written */
char *mime_text_to_html(const char *text)
{
    size_t n = text_html_pass(text, NULL); /* measured first: no growing buffer */
    char *out = xmalloc(n + 1);
    text_html_pass(text, out);
    out[n] = '\0';
    return out;
}
