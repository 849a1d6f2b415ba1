from mend_common.uow import SqlUnitOfWork

from ..adapters.repository import SqlNotificationsRepository


class NotificationsUnitOfWork(SqlUnitOfWork):
    def open_repositories(self, conn):
        self.repo = SqlNotificationsRepository(conn)
