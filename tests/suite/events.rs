//! The store suite's case for geofences, their events and presences, and webhook
//! deliveries: what the webhook workers and `/api/geofences` rely on, on both stores.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use spoor::geofence::{
    Circle, DeviceFences, Fence, FenceEvent, FenceEventKind, FenceEventQuery, FenceSpec, Presence,
};
use spoor::outbox::{Delivery, DeliveryQuery, DeliveryState, EventBatch, OutEvent};
use spoor::store::Store;

const T: i64 = 1_700_000_000_000;

fn fence(site: &str, id: &str, name: &str) -> Fence {
    Fence {
        id: id.into(),
        site: site.into(),
        spec: FenceSpec {
            name: name.into(),
            circle: Some(Circle {
                lat: 52.5,
                lon: 13.4,
                radius_m: 150.0,
            }),
            polygon: None,
        },
        updated: T,
    }
}

fn event(did: &str, kind: FenceEventKind, ts: i64) -> FenceEvent {
    FenceEvent {
        id: spoor::geofence::event_id(ts, &[kind.as_str(), did]),
        kind,
        site: "fleet".into(),
        did: did.into(),
        geofence: "gf_depot".into(),
        name: "Depot".into(),
        ts,
        lat: 52.5,
        lon: 13.4,
    }
}

fn delivery(e: &FenceEvent, webhook: &str) -> Delivery {
    let out = OutEvent::new(
        e.id.clone(),
        &format!("geofence.{}", e.kind.as_str()),
        &e.site,
        e.ts,
        serde_json::to_value(e).unwrap(),
    );
    Delivery::new(&out, webhook, e.ts)
}

async fn fences_are_kept_per_site(s: &Arc<dyn Store>) {
    // Fences: create, replace, list by site, delete.
    s.put_geofence(&fence("fleet", "gf_depot", "Depot"))
        .await
        .unwrap();
    s.put_geofence(&fence("fleet", "gf_yard", "Yard"))
        .await
        .unwrap();
    s.put_geofence(&fence("shop", "gf_x", "Other site"))
        .await
        .unwrap();
    s.put_geofence(&fence("fleet", "gf_yard", "Yard 2"))
        .await
        .unwrap();
    let fleet = s.geofences(Some("fleet")).await.unwrap();
    let names: Vec<&str> = fleet.iter().map(|f| f.spec.name.as_str()).collect();
    assert_eq!(names, ["Depot", "Yard 2"]);
    assert_eq!(fleet[0], fence("fleet", "gf_depot", "Depot"));
    assert_eq!(s.geofences(None).await.unwrap().len(), 3);
    assert!(s.delete_geofence("fleet", "gf_yard").await.unwrap());
    assert!(!s.delete_geofence("fleet", "gf_yard").await.unwrap());
    assert!(!s.delete_geofence("shop", "gf_depot").await.unwrap());
    assert_eq!(s.geofences(Some("fleet")).await.unwrap().len(), 1);
}

pub fn geofences_events_and_deliveries(
    s: Arc<dyn Store>,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        fences_are_kept_per_site(&s).await;

        // Events, deliveries and presences, recorded twice: stored once.
        let enter = event("van", FenceEventKind::Enter, T);
        let exit = event("van", FenceEventKind::Exit, T + 60_000);
        let other = event("bike", FenceEventKind::Enter, T + 30_000);
        let inside = DeviceFences {
            site: "fleet".into(),
            did: "bike".into(),
            last_ts: T + 30_000,
            inside: vec![Presence {
                fence: "gf_depot".into(),
                since: T + 30_000,
                lat: 52.5,
                lon: 13.4,
                confirmed: true,
                dwelt: false,
            }],
        };
        let batch = Arc::new(EventBatch {
            fence_events: vec![enter.clone(), exit.clone(), other.clone()],
            deliveries: vec![
                delivery(&enter, "hook_a"),
                delivery(&exit, "hook_a"),
                delivery(&other, "hook_a"),
                delivery(&enter, "hook_b"),
            ],
            states: vec![inside.clone()],
        });
        s.record_events(batch.clone()).await.unwrap();
        s.record_events(batch).await.unwrap();
        let q = |did: Option<&str>, since: i64, until: i64| FenceEventQuery {
            site: "fleet".into(),
            did: did.map(str::to_owned),
            since,
            until,
            limit: 100,
        };
        let van = s.fence_events(&q(Some("van"), 0, i64::MAX)).await.unwrap();
        assert_eq!(van, vec![enter.clone(), exit.clone()]);
        let all = s.fence_events(&q(None, 0, i64::MAX)).await.unwrap();
        assert_eq!(all, vec![enter.clone(), other.clone(), exit.clone()]);
        let window = s.fence_events(&q(None, T + 1, T + 59_999)).await.unwrap();
        assert_eq!(window, vec![other.clone()]);
        assert_eq!(s.fence_states().await.unwrap(), vec![inside.clone()]);

        // Due deliveries per webhook, earliest first; progress is kept.
        let due = s.due_deliveries("hook_a", T + 60_000, 10).await.unwrap();
        let ids: Vec<&str> = due.iter().map(|d| d.event.as_str()).collect();
        assert_eq!(ids, [&enter.id, &other.id, &exit.id]);
        assert_eq!(
            s.due_deliveries("hook_a", T + 10, 10).await.unwrap().len(),
            1
        );
        assert_eq!(s.oldest_pending("hook_a").await.unwrap(), Some(T));
        let mut first = due[0].clone();
        first.state = DeliveryState::Delivered;
        first.attempts = 1;
        first.last_status = Some(204);
        first.done_at = Some(T + 70_000);
        let mut retry = due[1].clone();
        retry.attempts = 1;
        retry.last_status = Some(500);
        retry.next_at = T + 120_000;
        s.update_deliveries(vec![first.clone(), retry.clone()])
            .await
            .unwrap();
        let due = s.due_deliveries("hook_a", T + 60_000, 10).await.unwrap();
        assert_eq!(due.len(), 1, "one delivered, one retried later");
        assert_eq!(due[0].event, exit.id);
        let later = s.due_deliveries("hook_a", T + 120_000, 10).await.unwrap();
        assert_eq!(later.len(), 2);
        assert_eq!(s.oldest_pending("hook_a").await.unwrap(), Some(T + 30_000));
        assert_eq!(s.oldest_pending("hook_c").await.unwrap(), None);

        // The listing: newest event first, filtered by state and webhook.
        let dq = |state: Option<DeliveryState>, webhook: Option<&str>| DeliveryQuery {
            site: Some("fleet".into()),
            webhook: webhook.map(str::to_owned),
            state,
            before: None,
            limit: 50,
        };
        let listed = s.deliveries(&dq(None, Some("hook_a"))).await.unwrap();
        let order: Vec<&str> = listed.iter().map(|d| d.event.as_str()).collect();
        assert_eq!(order, [&exit.id, &other.id, &enter.id]);
        let delivered = s
            .deliveries(&dq(Some(DeliveryState::Delivered), None))
            .await
            .unwrap();
        assert_eq!(delivered, vec![first]);
        assert_eq!(s.deliveries(&dq(None, None)).await.unwrap().len(), 4);
        let mut page = dq(None, None);
        page.before = Some(other.id.clone());
        assert_eq!(s.deliveries(&page).await.unwrap().len(), 2, "enter's two");

        // A device that left every fence keeps its newest time.
        let out = DeviceFences {
            inside: vec![],
            last_ts: T + 90_000,
            ..inside
        };
        s.record_events(Arc::new(EventBatch {
            states: vec![out.clone()],
            ..Default::default()
        }))
        .await
        .unwrap();
        assert_eq!(s.fence_states().await.unwrap(), vec![out]);

        // Retention: events before the cutoff, finished deliveries created before it.
        s.purge_before(T + 45_000).await.unwrap();
        let left = s.fence_events(&q(None, 0, i64::MAX)).await.unwrap();
        assert_eq!(left, vec![exit]);
        let left = s.deliveries(&dq(None, None)).await.unwrap();
        assert_eq!(left.len(), 3, "the delivered one went; pending ones stay");
    })
}
