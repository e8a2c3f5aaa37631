defmodule ObjectStoreX.StoreKeysTest do
  # Every provider option of `ObjectStoreX.Store` is mapped onto an object_store configuration
  # key; the native builder must know each of them, or the option fails at the user's first call.
  use ExUnit.Case, async: true

  alias ObjectStoreX.Store

  @required %{
    s3: [bucket: "b", region: "us-east-1"],
    gcs: [bucket: "b"],
    azure: [account: "devstoreaccount1", container: "c"]
  }

  @values %{
    virtual_hosted_style_request: false,
    skip_signature: true,
    use_emulator: false,
    checksum_algorithm: "sha256",
    conditional_put: "etag",
    copy_if_not_exists: "header:x-copy-if-none:*",
    endpoint: "http://127.0.0.1:9"
  }

  @network [:timeout, :connect_timeout, :read_timeout, :pool_idle_timeout, :allow_http]

  for provider <- [:s3, :gcs, :azure],
      option <- Store.allowed_options(provider),
      option not in [:prefix, :retry, :from_env, :proxy_url] do
    test "#{provider} option #{inspect(option)} reaches a configuration key the builder knows" do
      provider = unquote(provider)
      option = unquote(option)
      value = value(option)
      opts = Keyword.put(@required[provider], option, value)

      case ObjectStoreX.new(provider, opts) do
        {:ok, %Store{}} ->
          :ok

        # A value the builder itself refuses (a credential that is not a real key, a file
        # that is not there) is fine here; only an unknown key is a mapping fault.
        {:error, %ObjectStoreX.Error{message: message}} ->
          refute message =~ "unknown configuration key", message
      end
    end
  end

  defp value(option) when option in @network,
    do: if(option == :allow_http, do: true, else: 5_000)

  defp value(option), do: Map.get(@values, option, "value-#{option}")
end
