//! The learned-session bridge: which instance holds a session, here and (clustered) on every node.

use super::{Gateway, GroupState};

impl Gateway {
    /// Records that `session` lives on `instance` of `group`: here and, clustered, on every node.
    pub fn learn_session(&self, state: &GroupState, group: &str, session: &str, instance: &str) {
        state.learned.learn(session, instance);
        if let Some(cluster) = &self.cluster {
            cluster.learn(group, session, instance);
        }
    }

    /// Forgets `session` here and, clustered, on every node.
    pub fn forget_session(&self, state: &GroupState, group: &str, session: &str) {
        state.learned.forget(session);
        if let Some(cluster) = &self.cluster {
            cluster.forget(group, session);
        }
    }

    /// The instance `session` was learned on: here, else (clustered) by another node, which is
    /// then remembered here too.
    pub async fn learned_instance(
        &self,
        state: &GroupState,
        group: &str,
        session: &str,
    ) -> Option<String> {
        if let Some(instance) = state.learned.get(session) {
            return Some(instance);
        }
        let instance = self.cluster.as_ref()?.lookup(group, session).await?;
        state.learned.learn(session, &instance);
        Some(instance)
    }
}
