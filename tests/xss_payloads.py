"""Hostile text for every field a proxy sends: if any of it runs, a marker shows it.

Each payload, if a page ever ran it, would do one of: set `window.__xss`, set the
title to "XSS", open a dialog, or log "XSS-FIRED" to the console. tests/test_xss_browser.py
plants them in stored tasks through the sync's own write path and looks for those traces
(and for javascript:/data:/vbscript: URLs in the DOM) in a real browser.

PAYLOADS go into text fields; IMAGE_URLS into `imageUrl`, which the pages render as
<img src> and <a href> when it is an http(s) link.
"""

MARKER = "__xss"  # the global most payloads set
FIRED = "XSS-FIRED"  # what console payloads log

PAYLOADS = [
    # Script elements
    "<script>window.__xss=1</script>",
    "<SCRIPT>alert('XSS')</SCRIPT>",
    "<script src=data:text/javascript,window.__xss=1></script>",
    "<script>console.log('XSS-FIRED')</script>",
    "<scr<script>ipt>window.__xss=1</scr</script>ipt>",
    "<script\x20type='text/javascript'>window.__xss=1;</script>",
    # Event handlers
    "<img src=x onerror=window.__xss=1>",
    "<img src=x onerror=\"alert('XSS')\">",
    '<img src="x" onerror="document.title=\'XSS\'">',
    "<IMG SRC=x OnErRoR=window.__xss=1>",
    "<img/src=x/onerror=window.__xss=1>",
    "<svg onload=window.__xss=1>",
    "<svg/onload=alert('XSS')>",
    "<svg><script>window.__xss=1</script></svg>",
    "<svg><animate onbegin=window.__xss=1 attributeName=x dur=1s>",
    "<body onload=window.__xss=1>",
    "<details open ontoggle=window.__xss=1>",
    "<input autofocus onfocus=window.__xss=1>",
    "<video><source onerror=window.__xss=1></video>",
    "<audio src=x onerror=window.__xss=1>",
    "<marquee onstart=window.__xss=1>x</marquee>",
    "<div onmouseover=window.__xss=1 style=position:fixed;inset:0>x</div>",
    # Frames, objects, documents in documents
    '<iframe srcdoc="<script>parent.__xss=1</script>"></iframe>',
    '<iframe src="javascript:parent.__xss=1"></iframe>',
    '<object data="javascript:window.__xss=1"></object>',
    '<embed src="javascript:window.__xss=1">',
    '<math><mtext><table><mglyph><style><img src=x onerror="window.__xss=1">',
    '<noscript><p title="</noscript><img src=x onerror=window.__xss=1>">',
    '<base href="javascript:/">',
    '<meta http-equiv="refresh" content="0;url=javascript:window.__xss=1">',
    # Links and URL schemes
    '<a href="javascript:window.__xss=1">click</a>',
    '<a href="JaVaScRiPt:window.__xss=1">click</a>',
    '<a href="java\tscript:window.__xss=1">click</a>',
    '<a href="&#x6A;avascript:window.__xss=1">click</a>',
    '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">x</a>',
    '<a href="vbscript:msgbox(1)">click</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">click</a>',
    '<svg><a xlink:href="javascript:window.__xss=1"><text y="20">x</text></a></svg>',
    '<form action="javascript:window.__xss=1"><button>x</button></form>',
    "javascript:window.__xss=1",
    "JaVaScRiPt:window.__xss=1",
    " javascript:window.__xss=1",
    "java\tscript:window.__xss=1",
    "java\nscript:window.__xss=1",
    "&#x6A;avascript:window.__xss=1",
    "data:text/html,<script>window.__xss=1</script>",
    "data:image/svg+xml,<svg onload=window.__xss=1>",
    'vbscript:msgbox("XSS")',
    "[click](javascript:window.__xss=1)",
    # Breaking out of attributes, strings and elements
    '"><script>window.__xss=1</script>',
    "'><script>window.__xss=1</script>",
    '" onmouseover="window.__xss=1" x="',
    "' onfocus='window.__xss=1' autofocus x='",
    '" autofocus onfocus="window.__xss=1',
    "'-alert('XSS')-'",
    '";window.__xss=1;//',
    '\\";window.__xss=1;//',
    "</textarea><script>window.__xss=1</script>",
    "</title><script>window.__xss=1</script>",
    "</script><script>window.__xss=1</script>",
    "</style><script>window.__xss=1</script>",
    "--><script>window.__xss=1</script><!--",
    "<!--<script>window.__xss=1</script>-->",
    "]]><script>window.__xss=1</script>",
    "</pre><script>window.__xss=1</script>",
    "</template><script>window.__xss=1</script>",
    # Styles
    '<div style="background:url(javascript:window.__xss=1)">x</div>',
    '<div style="width:expression(window.__xss=1)">x</div>',
    "<style>@import 'javascript:window.__xss=1';</style>",
    '<style>*{background:url("javascript:window.__xss=1")}</style>',
    # Template languages: Django, Jinja, Angular, JS template literals
    "{{7*7}}",
    "{% debug %}{{ request }}",
    "${7*7}",
    "{{constructor.constructor('window.__xss=1')()}}",
    "#{7*7}<%= 7*7 %>",
    # htmx: attributes it would act on if they reached the DOM
    '<div hx-get="/" hx-trigger="load" hx-on::after-request="window.__xss=1">x</div>',
    '<img src=x hx-on:error="window.__xss=1">',
    '<div hx-swap-oob="true" id="live-poller">x</div>',
    # Encoded and look-alike variants
    "&lt;script&gt;window.__xss=1&lt;/script&gt;",
    "%3Cscript%3Ewindow.__xss%3D1%3C%2Fscript%3E",
    "\\u003cscript\\u003ewindow.__xss=1\\u003c/script\\u003e",
    "\uff1cscript\uff1ewindow.__xss=1\uff1c/script\uff1e",
    "<scr\x00ipt>window.__xss=1</scr\x00ipt>",
    "\u202e<script>window.__xss=1</script>",
    # Breaking JSON embedded in a page (json_script, data attributes)
    '</script><script>window.__xss=1</script>{"a":"',
    '{"x":"</script><svg onload=window.__xss=1>"}',
]

# imageUrl values: not http(s) (never shown), or http(s) with markup in them (shown, and
# must stay one attribute value). Hosts are local and closed: nothing leaves the machine.
IMAGE_URLS = [
    "javascript:window.__xss=1",
    "JAVASCRIPT:window.__xss=1",
    " javascript:window.__xss=1",
    "\tjavascript:window.__xss=1",
    "java\tscript:window.__xss=1",
    "&#x6A;avascript:window.__xss=1",
    "data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+",
    "data:text/html,<script>window.__xss=1</script>",
    "vbscript:msgbox(1)",
    "//127.0.0.1:9/x.png",
    'http://127.0.0.1:9/x.png" onerror="window.__xss=1',
    "http://127.0.0.1:9/x.png' onerror='window.__xss=1",
    'http://127.0.0.1:9/"><script>window.__xss=1</script>.png',
    "https://127.0.0.1:9/x.png?a=1&b=<svg/onload=window.__xss=1>",
    "http://127.0.0.1:9/x.png#javascript:window.__xss=1",
    "http://127.0.0.1:9/x.png\" data-x='1",
]

SCHEMES = ("javascript:", "data:", "vbscript:")


def short(payload, limit=64):
    """A payload cut to fit a column with a limit (status, action, progress)."""
    return payload[:limit]


def groups(payloads, size):
    """The payloads in consecutive groups of `size`, each joined into one text."""
    return [" ".join(payloads[i : i + size]) for i in range(0, len(payloads), size)]
