defmodule ObjectStoreX.Native do
  @moduledoc false
  # NIF stubs only: every function here is native code, so a long_schedule event that points
  # into this module means a NIF held its scheduler. The `{ref, result}` waiting lives in
  # ObjectStoreX.Call.

  @on_load :load_nif

  def load_nif do
    case :code.priv_dir(:objectstorex) do
      {:error, reason} ->
        record_load_error("priv directory of :objectstorex not found (#{inspect(reason)})")

      priv ->
        path = :filename.join(priv, ~c"native/libobjectstorex")

        case :erlang.load_nif(path, 0) do
          :ok -> warn_refused_settings()
          {:error, {reason, text}} -> record_load_error("#{reason}: #{text}")
        end
    end
  end

  # A setting read at load that was refused leaves the default in place, and says so once.
  defp warn_refused_settings do
    Enum.each(native_refused(), &:logger.warning/1)
  end

  # Returning :ok keeps this module loaded, so callers get this explanation instead of an
  # UndefinedFunctionError.
  defp record_load_error(why) do
    message =
      "the ObjectStoreX native library could not be loaded (#{why}); " <>
        "run `mix compile` with Rust's cargo installed"

    :persistent_term.put({__MODULE__, :load_error}, message)
    :logger.error(message)
    :ok
  end

  def task_cancel(_handle), do: not_loaded()
  def native_stats, do: not_loaded()
  def native_malloc, do: not_loaded()
  def native_refused, do: not_loaded()
  def store_new(_ref, _provider, _config), do: not_loaded()
  def object_put(_ref, _store, _path, _iovec, _opts), do: not_loaded()
  def object_get(_ref, _store, _path, _opts), do: not_loaded()
  def object_head(_ref, _store, _path), do: not_loaded()
  def object_delete(_ref, _store, _path), do: not_loaded()
  def object_copy(_ref, _store, _op, _from, _to, _overwrite), do: not_loaded()
  def multipart_sweep(_ref, _store, _path, _since_ms), do: not_loaded()
  def object_get_ranges(_ref, _store, _path, _ranges), do: not_loaded()
  def object_delete_many(_ref, _store, _paths), do: not_loaded()
  def object_list_with_delimiter(_ref, _store, _prefix, _offset), do: not_loaded()
  def object_list(_ref, _store, _prefix, _offset), do: not_loaded()
  def object_sign_url(_ref, _store, _method, _path, _expires_in), do: not_loaded()
  def stream_download(_ref, _store, _path, _opts), do: not_loaded()
  def stream_list(_ref, _store, _prefix, _offset, _page_size, _prefetch), do: not_loaded()
  def stream_list_page(_page), do: not_loaded()
  def stream_ack(_stream, _credits), do: not_loaded()
  def stream_cancel(_stream), do: not_loaded()
  def stream_get_many(_ref, _store, _opts, _limit, _timeout), do: not_loaded()
  def stream_put_many(_ref, _store, _opts, _limit, _timeout), do: not_loaded()
  def stream_many_push(_stream, _jobs), do: not_loaded()
  def stream_many_close(_stream), do: not_loaded()
  def stream_test_panic(_ref, _message), do: not_loaded()
  def store_valid(_term), do: not_loaded()
  def fault_wrap(_store, _rules), do: not_loaded()
  def fault_calls(_fault), do: not_loaded()
  def fault_valid(_term), do: not_loaded()

  def object_download_file(_ref, _store, _path, _local, _opts),
    do: not_loaded()

  def upload_new(_store, _path, _opts), do: not_loaded()
  def upload_write(_ref, _upload, _iovec), do: not_loaded()
  def upload_release(_upload), do: not_loaded()
  def upload_finish(_ref, _upload), do: not_loaded()
  def upload_abort(_ref, _upload), do: not_loaded()
  def upload_file(_ref, _store, _path, _local_path, _opts), do: not_loaded()
  def upload_transfer(_ref, _source, _source_path, _store, _path, _opts), do: not_loaded()

  defp not_loaded do
    message =
      :persistent_term.get(
        {__MODULE__, :load_error},
        "the ObjectStoreX native library is not loaded"
      )

    raise ObjectStoreX.Error, reason: :nif_not_loaded, message: message
  end
end
