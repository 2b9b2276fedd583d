"""The smallest WSGI application: the README's demo.

Run it with:  .venv/bin/cogen-web examples.hello:application --port 8080
(or:          .venv/bin/python examples/hello.py)
then open http://127.0.0.1:8080/
"""


def application(environ, start_response):
    """Say hello."""
    body = b"Hello, world!\n"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


if __name__ == "__main__":
    from cogen.web import serve
    serve(application, host="127.0.0.1", port=8080)
