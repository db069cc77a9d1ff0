"""``frozen-tasks``: look at and check what ``doit frozen`` wrote.

``frozen-tasks inspect PATH`` lists the images; ``frozen-tasks verify PATH`` checks the output
end to end (for CI, before ``docker load``). PATH is an output directory or a plain tar of one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile

from .errors import FrozenError
from .inspect import format_table, inspect_output, verify_output

DESCRIPTION = """\
Inspect and verify the output of `doit frozen` / frozen-download: a directory holding
manifest.json, repositories, legacy layer directories and an OCI image layout, or a plain
(uncompressed) tar of one, such as `tar -cC frozen . > frozen.tar` writes.

examples:
  frozen-tasks inspect frozen
  frozen-tasks inspect --json frozen.tar | jq -r '.images[].tags[]'
  frozen-tasks verify frozen && tar -cC frozen . | docker load
"""

INSPECT_HELP = """\
List the images of the OCI layout (index.json), one row per image: its tags, platform
(os/architecture/variant from the image config), the OCI manifest digest (as in index.json),
the config digest, the number of layers and their total compressed size.

examples:
  frozen-tasks inspect frozen
  frozen-tasks inspect --no-trunc frozen.tar
  frozen-tasks inspect --json frozen | jq '.images[] | {tags, config_digest}'
"""

VERIFY_HELP = """\
Check the output end to end, as CI should before `docker load`:
  - every blobs/sha256/<hex> hashes to its name and has the size its descriptors give;
  - every manifest.json Config / Layers path exists;
  - every index.json manifest resolves to existing blobs, and the config's rootfs.diff_ids
    count equals the layer count;
  - manifest.json RepoTags and index.json ref.name annotations are the same tags, with the
    same config and layers;
  - repositories tags point at existing legacy layer directories;
  - every legacy <id>/layer.tar is identical to its blob.
Blobs are hashed as they are read (a tar is read in place, never extracted).

exit status: 0 and a one-line summary when all is well; 1 and one line per problem
(file, what is wrong, what to do) otherwise.

examples:
  frozen-tasks verify frozen
  frozen-tasks verify frozen.tar && docker load -i frozen.tar
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``frozen-tasks`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="frozen-tasks",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    inspect = commands.add_parser(
        "inspect",
        help="list the images of an output directory or tar",
        description=INSPECT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    inspect.add_argument("path", metavar="PATH", help="output directory, or a plain tar of one")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of a table")
    inspect.add_argument("--no-trunc", action="store_true", help="print full digests in the table")
    verify = commands.add_parser(
        "verify",
        help="check an output directory or tar end to end (exit 1 on any problem)",
        description=VERIFY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("path", metavar="PATH", help="output directory, or a plain tar of one")
    verify.add_argument(
        "--json", action="store_true", help="print the result as JSON (same exit status)"
    )
    return parser


def _inspect(args: argparse.Namespace) -> int:
    images, warnings = inspect_output(args.path)
    for warning in warnings:
        print(f"warning: {warning} (run `frozen-tasks verify {args.path}`)", file=sys.stderr)
    if args.json:
        document = {"path": args.path, "images": [image.as_json() for image in images]}
        print(json.dumps(document, indent=2))
    elif images:
        print(format_table(images, truncate=not args.no_trunc))
    else:
        print(f"{args.path}: no images")
    return 0


def _verify(args: argparse.Namespace) -> int:
    result = verify_output(args.path)
    if args.json:
        document = {
            "path": args.path,
            "ok": result.ok,
            "images": result.images,
            "blobs": result.blobs,
            "blob_bytes": result.blob_bytes,
            "problems": [vars(problem) for problem in result.problems],
        }
        print(json.dumps(document, indent=2))
    elif result.ok:
        print(result.summary())
    else:
        count = len(result.problems)
        print(f"{args.path}: {count} problem{'s' if count != 1 else ''}:", file=sys.stderr)
        for problem in result.problems:
            print(problem, file=sys.stderr)
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``frozen-tasks``; returns the exit status (errors: one line, status 1)."""
    args = build_parser().parse_args(argv)
    try:
        return _verify(args) if args.command == "verify" else _inspect(args)
    except BrokenPipeError:  # `frozen-tasks inspect --json out | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (FrozenError, OSError, tarfile.TarError, EOFError) as exc:
        message = (
            f"{exc.filename}: {exc.strerror}"
            if isinstance(exc, OSError) and exc.filename and exc.strerror
            else str(exc)
        )
        print(f"error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
