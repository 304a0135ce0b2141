"""The two OpenSearch modules the local node needs beyond the ``integ-test-zip`` distribution.

The distribution (:mod:`local.opensearch_node`) is the server and its transport only.
Erasure and reassignment (``_delete_by_query``, ``_update_by_query`` with a Painless
script: :meth:`speed_layer.store.OpenSearchLiveStore.erase_subject`, ``reassign``) need
the ``reindex`` and ``lang-painless`` modules, which every full distribution and Amazon
OpenSearch Service have. Their jars and those they load are on Maven Central; the modules'
descriptors are the build's (``plugin-descriptor.properties``: name, class, versions) and
Painless's security policy is its own (it generates classes at run time). Each jar is
pinned by SHA-256, checked before it is copied into ``modules/<name>/``.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Final, NamedTuple

from core.errors import SleepstackError
from local.maven import fetch_artifact

__all__ = ["MODULES", "Jar", "Module", "install_modules", "modules_marker"]


class Jar(NamedTuple):
    coordinates: str  # group:artifact:version
    sha256: str

    @property
    def file(self) -> str:
        _, artifact, version = self.coordinates.split(":")
        return f"{artifact}-{version}.jar"

    def path(self, repo: Path) -> Path:
        group, artifact, version = self.coordinates.split(":")
        return repo.joinpath(*group.split("."), artifact, version, self.file)


class Module(NamedTuple):
    name: str
    classname: str
    description: str
    jars: tuple[Jar, ...]
    policy: str = ""


_OS = "2.19.6"
MODULES: Final = (
    Module(
        "reindex",
        "org.opensearch.index.reindex.ReindexPlugin",
        "Reindex, update-by-query and delete-by-query.",
        (
            Jar(
                f"org.opensearch.plugin:reindex-client:{_OS}",
                "431d1037eadaa1fc144155b9397d4781d7b68e5b4700f68735c6a97bf52defff",
            ),
            Jar(
                f"org.opensearch:opensearch-ssl-config:{_OS}",
                "93e27cba4a85bc751f68a0c70146f341008ff6c63bfa43d5d3a41cbd4a99d59c",
            ),
            Jar(
                f"org.opensearch.client:opensearch-rest-client:{_OS}",
                "225987b8fd88db60f0aade505bd55b1321eb302f942e15874e2192f2d47a1d98",
            ),
            Jar(
                "org.apache.httpcomponents:httpclient:4.5.14",
                "c8bc7e1c51a6d4ce72f40d2ebbabf1c4b68bfe76e732104b04381b493478e9d6",
            ),
            Jar(
                "org.apache.httpcomponents:httpcore:4.4.16",
                "6c9b3dd142a09dc468e23ad39aad6f75a0f2b85125104469f026e52a474e464f",
            ),
            Jar(
                "org.apache.httpcomponents:httpasyncclient:4.1.5",
                "0c1877489a9d1ba4fa50f6cfcab11d1123618858cb31d56afaab5afdd5064d99",
            ),
            Jar(
                "org.apache.httpcomponents:httpcore-nio:4.4.16",
                "4018736ede2d321034e8517ea90baefb31831a8608afccc446d8a699fb1d00d4",
            ),
            Jar(
                "commons-codec:commons-codec:1.16.1", "ec87bfb55f22cbd1b21e2190eeda28b2b312ed2a431ee49fbdcc01812d04a5e4"
            ),
            Jar(
                "commons-logging:commons-logging:1.2",
                "daddea1ea0be0f56978ab3006b8ac92834afeefbd9b7e4e6316fca57df0fa636",
            ),
        ),
    ),
    Module(
        "lang-painless",
        "org.opensearch.painless.PainlessPlugin",
        "Painless, the scripting language of update-by-query.",
        (
            Jar(
                f"org.opensearch.plugin:lang-painless:{_OS}",
                "e71e6c7ef99a6f5958cd0b25367acf472cc52cd49d29e13084c5ff0b5931f717",
            ),
            Jar(
                f"org.opensearch.plugin:opensearch-scripting-painless-spi:{_OS}",
                "84e545b968151739f1915cfd2db24bf873edfd317d2848b87b61d0d60ec70869",
            ),
            Jar("org.antlr:antlr4-runtime:4.13.1", "54665d2838cc66458343468efc539e454fc95b46a8a04b13c6ac43fc9be63505"),
            Jar("org.ow2.asm:asm:9.7", "adf46d5e34940bdf148ecdd26a9ee8eea94496a72034ff7141066b3eea5c4e9d"),
            Jar("org.ow2.asm:asm-util:9.7", "37a6414d36641973f1af104937c95d6d921b2ddb4d612c66c5a9f2b13fc14211"),
            Jar("org.ow2.asm:asm-tree:9.7", "62f4b3bc436045c1acb5c3ba2d8ec556ec3369093d7f5d06c747eb04b56d52b1"),
            Jar("org.ow2.asm:asm-analysis:9.7", "7bc6bcbc21379948a0c8c467fb0f864206e5b818f6bc0b546872f5c9f941556f"),
            Jar("org.ow2.asm:asm-commons:9.7", "389bc247958e049fc9a0408d398c92c6d370c18035120395d4cba1d9d9304b7a"),
        ),
        # OpenSearch's own policy for the module: it generates and loads classes at run time
        'grant {\n  permission java.lang.RuntimePermission "createClassLoader";\n'
        '  permission java.lang.RuntimePermission "getClassLoader";\n};\n',
    ),
)


def modules_marker() -> str:
    """What the ``.installed`` marker says about the modules (a changed pin reinstalls)."""
    return ",".join(
        f"{m.name}:" + hashlib.sha256("".join(j.sha256 for j in m.jars).encode()).hexdigest()[:12] for m in MODULES
    )


def install_modules(dist: Path, repo: Path, error: type[SleepstackError]) -> None:
    """Fetch :data:`MODULES`' jars with Maven (``repo``: its local repository, the cache),
    check their SHA-256 and lay them out under ``dist/modules``; ``error`` names a failure."""
    for module in MODULES:
        folder = dist / "modules" / module.name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for jar in module.jars:
            path = fetch_artifact(jar.coordinates, jar.path(repo), jar.sha256, error)
            shutil.copyfile(path, folder / jar.file)
        (folder / "plugin-descriptor.properties").write_text(
            f"description={module.description}\nversion={_OS}\nname={module.name}\n"
            f"classname={module.classname}\njava.version=11\nopensearch.version={_OS}\n"
        )
        if module.policy:
            (folder / "plugin-security.policy").write_text(module.policy)
