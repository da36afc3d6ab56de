//! The hub as the cluster sees it ([`LocalHub`]): the channels it holds and the deliveries other
//! nodes hand back.

use super::fanout::{Frame, Hub};
use crate::cluster::LocalHub;
use crate::pusher::webhook::AppEvent;

impl LocalHub for Hub {
    fn app_ids(&self) -> Vec<String> {
        self.apps().iter().map(|app| app.id.clone()).collect()
    }

    fn channels(&self, app: &str) -> Vec<String> {
        self.app_by_id(app)
            .map(|app| app.channel_keys())
            .unwrap_or_default()
    }

    fn has_channel(&self, app: &str, channel: &str) -> bool {
        self.app_by_id(app)
            .is_some_and(|app| app.has_channel(channel))
    }

    fn deliver(&self, app: &str, channel: &str, frame: &str, except: Option<&str>) {
        if let Some(app) = self.app_by_id(app) {
            Hub::deliver(self, &app, channel, &Frame::text(frame), except);
        }
    }

    fn webhook(&self, app: &str, event: AppEvent) {
        if let Some(app) = self.app_by_id(app) {
            app.emit(event);
        }
    }

    fn terminate(&self, app: &str, user: &str) {
        if let Some(app) = self.app_by_id(app) {
            app.terminate(user);
        }
    }
}
