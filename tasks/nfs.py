"""The NFS model store: client, mount points, fstab entries, mounted now, Docker ordered after.

The seed's fstab line carries ``nofail``, so boot does not wait for the NAS and Docker can start
first: a container then bind-mounts the empty mount point and serves nothing (moby#4213). Docker
therefore requires the mounts its containers read. NFSv4 maps owners by name, so idmapd's Domain
must match the NAS or every file shows as nobody:nogroup.
"""

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.server import Mounts
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from sparkdeploy import nfs
from sparkdeploy.packages import missing_packages


@deploy("NFS model store")
def nfs_model_store() -> None:
    source = f"host {host.name!r} data"
    mounts, warnings = nfs.parse_mounts(host.data.nfs_mounts, source)
    domain = nfs.idmap_domain(host.data.nfs_idmap_domain, source)
    for warning in warnings:
        logger.warning(warning)
    if not mounts:
        return
    can_mount = host.data.get("host_can_mount_nfs", True)

    if not can_mount:
        # nfs-common mounts the kernel's rpc_pipefs; where NFS cannot be mounted neither can it,
        # and the failed unit would mark the whole system degraded.
        pipefs = files.link(
            name="Leave out the RPC pipe file system (this host cannot mount NFS)",
            path=f"/etc/systemd/system/{nfs.RPC_PIPEFS_UNIT}",
            target="/dev/null",
            user="root", group="root",  # a symlink has no mode of its own
        )
        systemd.daemon_reload(name="Load the masked RPC pipe file system", _if=pipefs.did_change)
        server.shell(
            name="Forget an earlier failure of the RPC pipe file system",
            commands=[f"systemctl reset-failed {nfs.RPC_PIPEFS_UNIT} || true"],
            _if=pipefs.did_change,
        )
    if missing_packages(host.get_fact(DebPackages), ["nfs-common"]):
        apt.update(name="Refresh apt's package lists", cache_time=3600)
    apt.packages(name="Install the NFS client", packages=["nfs-common"])
    idmapd = files.template(
        name="Set the NFSv4 id-mapping domain",
        src="templates/etc/idmapd.conf.j2",
        dest="/etc/idmapd.conf",
        user="root", group="root", mode="0644",
        domain=domain,
    )

    mounted = host.get_fact(Mounts)
    fstab = []
    for mount in mounts:
        if mount.path in mounted:
            # Owner and mode now belong to the export's root, not to the mount point.
            host.noop(f"{mount.path} is mounted")
        else:
            files.directory(
                name=f"Create the mount point {mount.path}",
                path=mount.path,
                user="root", group="root", mode="0755",
            )
        fstab.append(files.line(
            name=f"Mount {mount.source} on {mount.path} at boot (fstab)",
            path="/etc/fstab",
            line=mount.fstab_match,
            replace=mount.fstab_line,
            extended_regex=True,
        ))
    systemd.daemon_reload(
        name="Let systemd regenerate mount units from fstab",
        _if=any_changed(*fstab),
    )

    required = [mount.path for mount in mounts if mount.docker_requires]
    if not can_mount:
        logger.warning(f"{host.print_prefix}skipping mounting {', '.join(m.path for m in mounts)} "
                       "and making Docker wait for it: this host cannot mount NFS "
                       "(host_can_mount_nfs is false)")
        return
    for mount in mounts:
        server.mount(name=f"Mount {mount.path} now", path=mount.path, mounted=True)
    server.shell(
        name="Forget cached NFSv4 id mappings after a domain change",
        commands=["nfsidmap -c || true"],
        _if=idmapd.did_change,
    )
    if required:
        dropin = files.template(
            name="Make Docker wait for the NFS mounts its containers read",
            src="templates/etc/systemd/system/docker.service.d/10-sparkdeploy-nfs.conf.j2",
            dest=nfs.DOCKER_DROPIN_PATH,
            user="root", group="root", mode="0644",
            paths=required,
        )
    else:
        dropin = files.file(
            name="Let Docker start without waiting for NFS",
            path=nfs.DOCKER_DROPIN_PATH,
            present=False,
            user="root", group="root", mode="0644",
        )
    systemd.daemon_reload(
        name="Load Docker's mount ordering",
        _if=dropin.did_change,
    )
