//! A session's second lab host, `labhost2`: made when the session creates its first
//! overlay network, so that containers on two "hosts" can talk over a VXLAN tunnel, as
//! Docker's overlay driver joins the hosts of a swarm.
//!
//! It is a lab host like the first (same uid range, limits and image), joined to it by an
//! underlay link (a veth pair `gt-under`, 192.168.200.1 ⇄ .2). `gantry run --node labhost2`
//! in the first lab host starts a container nested in the second. It ends with the
//! session.

use super::networks::SessionNetworks;
use super::{SessionError, Sessions};
use crate::image::{ImageStore, LABHOST_IMAGE};
use crate::runtime::spec::{Hostname, ImageName};
use crate::runtime::state::{self, ContainerDir};
use crate::store::SessionRow;

fn internal(e: impl std::fmt::Display) -> SessionError {
    SessionError::Start(e.to_string())
}

impl Sessions {
    /// The second lab host, started (with its underlay link) on first need. The caller
    /// holds the network lock and saves `nets`.
    pub(crate) async fn second_node(
        &self,
        row: &SessionRow,
        nets: &mut SessionNetworks,
    ) -> Result<ContainerDir, SessionError> {
        if let Some(id) = &nets.node2 {
            let cd = ContainerDir::new(&self.paths, id);
            if cd.state().is_ok_and(|s| state::container_alive(&s)) {
                return Ok(cd);
            }
        }
        let first = self.container(row);
        let first_spec = first.spec().map_err(internal)?;
        let first_pid = self.labhost_pid(row)?;
        let image = ImageName::parse(LABHOST_IMAGE).expect("a valid image name");
        let rootfs = ImageStore::new(&self.paths)
            .rootfs(&image)
            .map_err(internal)?;
        let id = crate::runtime::spec::new_container_id();
        let mut spec = self.labhost_spec(&row.id, &id, image, rootfs, first_spec.idmap);
        spec.hostname = Hostname::parse("labhost2").expect("a valid hostname");
        spec.limits = first_spec.limits;
        self.start_container(&spec).await?;
        let cd = ContainerDir::new(&self.paths, &id);
        let second_pid = cd
            .running_pid()
            .ok_or_else(|| internal("the second lab host has no pid"))?;
        let linked = std::thread::spawn(move || {
            crate::runtime::network::create_underlay(first_pid, second_pid)
        })
        .join()
        .map_err(|_| internal("the network thread panicked"))?;
        if let Err(e) = linked {
            self.stop_container(&id).await;
            return Err(internal(e));
        }
        nets.node2 = Some(id);
        tracing::info!(session = %row.id, "second lab host started");
        Ok(cd)
    }

    /// The lab host called `name` (`labhost`, or `labhost2` once it exists).
    pub fn lab_node(&self, row: &SessionRow, name: &str) -> Result<ContainerDir, SessionError> {
        match name {
            "labhost" => Ok(self.container(row)),
            "labhost2" => self
                .networks(&row.id)
                .node2
                .map(|id| ContainerDir::new(&self.paths, &id))
                .filter(|cd| cd.state().is_ok_and(|s| state::container_alive(&s)))
                .ok_or_else(|| {
                    SessionError::Missing(
                        "there is no labhost2 yet: it starts with the first overlay network (gantry network create --driver overlay NAME)".into(),
                    )
                }),
            other => Err(SessionError::BadRequest(format!(
                "unknown node {other:?}: use labhost or labhost2"
            ))),
        }
    }

    /// Stops the second lab host, if the session has one.
    pub(crate) async fn stop_second_node(&self, row: &SessionRow) {
        if let Some(id) = self.networks(&row.id).node2 {
            self.stop_container(&id).await;
        }
    }
}
